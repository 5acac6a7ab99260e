"""Token usage records: one row per token, IP network, hour and resource, with a count.

Every token the IdP sees used (personal access tokens, access tokens at userinfo and
introspection, refresh tokens at the token endpoint) is counted here; never its value.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from datetime import timedelta

from flask import Flask
from flask import has_request_context
from flask import request

from idp import db
from idp.models.token import TokenUsage
from idp.sessions import logout
from idp.settings import get_settings
from idp.tokens import storage

PAT = "pat"
ACCESS = "access"
REFRESH = "refresh"
# The network a use is attributed to: a home or office line's usual neighbourhood.
IPV4_PREFIX = 24
IPV6_PREFIX = 48
MAX_USER_AGENT = 255
RECENT_USAGE_ROWS = 10


def init_app(app: Flask) -> None:
    """Purge usage records past their retention in the periodic sweep."""
    logout.get_registry(app).periodic.append(purge_usage)


def network_of(ip: str) -> str:
    """Return the /24 (IPv4) or /48 (IPv6) ``ip`` is in; an IPv4-mapped address counts as IPv4."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def client_network() -> str | None:
    """Return the network of this request's client; None outside a request or for a non-IP."""
    if not has_request_context() or not request.remote_addr:
        return None
    try:
        return network_of(request.remote_addr)
    except ValueError:
        return None


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def record_use(
    kind: str,
    token_id: int | str,
    *,
    user_id: int | None,
    resource: str,
    introspected: bool = False,
) -> str | None:
    """Count one use of a token by this request's client; commit. Return its network.

    Outside a request, or from an address that is not an IP, nothing is recorded (None).
    """
    network = client_network()
    if network is None:
        return None
    now = db.now()
    user_agent = request.user_agent.string[:MAX_USER_AGENT] or None
    storage.upsert_usage(
        {
            "token_kind": kind,
            "token_id": str(token_id),
            "user_id": user_id,
            "network": network,
            "hour": hour_of(now),
            "resource": resource[:255],
            "introspected": introspected,
            "count": 1,
            "first_seen": now,
            "last_seen": now,
            "ip": request.remote_addr or "",
            "user_agent": user_agent,
        }
    )
    db.get_session().commit()
    return network


def recent_usage(kind: str, token_id: int | str) -> list[TokenUsage]:
    """Return the token's latest usage rows (newest hour first)."""
    return storage.list_usage(kind, str(token_id), limit=RECENT_USAGE_ROWS)


def usage_of(keys: dict[str, list[str]], *, limit: int) -> list[TokenUsage]:
    """Return the latest usage rows of several tokens, given as ``{kind: [token_id, ...]}``."""
    return storage.list_usage_of(keys, limit=limit)


def purge_usage() -> int:
    """Delete a batch of usage records older than the retention; return how many."""
    before = db.now() - timedelta(days=get_settings().token_usage_retention)
    purged = storage.purge_usage(before)
    db.get_session().commit()
    return purged
