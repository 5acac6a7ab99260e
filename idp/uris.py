"""URI checks shared by the protocols (OIDC redirect URIs, SAML endpoint locations)."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """Return whether ``host`` is localhost or a loopback IP (RFC 8252 §7.3, §8.3)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
