"""Notes: a confidential OpenID Connect client with back-channel logout (demo port 5001).

Start it with ``flask --app relying_party_demo.notes:create_app run --port 5001`` or
``python -m relying_party_demo.notes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from relying_party_demo.common.oidc_rp import RelyingParty
from relying_party_demo.common.oidc_rp import create_oidc_app

NOTES = RelyingParty(
    name="notes",
    title="Notes",
    tagline="Your team's notes, behind single sign-on.",
    public=False,
    # The demo seed registers Notes with this secret; a real deployment sets NOTES_CLIENT_SECRET.
    default_client_secret="notes-demo-secret-not-for-production-0001",  # noqa: S106
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Notes app; ``config`` overrides the environment (see the module docstring)."""
    return create_oidc_app(__name__, NOTES, config)
