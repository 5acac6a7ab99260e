"""Wiki: a public OpenID Connect client (PKCE, no secret) with back-channel logout (port 5002).

Start it with ``flask --app relying_party_demo.wiki:create_app run --port 5002`` or
``python -m relying_party_demo.wiki``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from relying_party_demo.common.oidc_rp import RelyingParty
from relying_party_demo.common.oidc_rp import create_oidc_app

WIKI = RelyingParty(
    name="wiki",
    title="Wiki",
    tagline="The company wiki, for everyone signed in.",
    public=True,
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Wiki app; ``config`` overrides the environment."""
    return create_oidc_app(__name__, WIKI, config)
