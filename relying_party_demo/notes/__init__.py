"""Notes: a confidential OpenID Connect client with back-channel logout (demo port 5001).

Start it with ``flask --app relying_party_demo.notes:create_app run --port 5001`` or
``python -m relying_party_demo.notes``. Its pages are ``common/oidc_views.py``, shared with Wiki.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from relying_party_demo.common import oidc
from relying_party_demo.common.config import load_settings
from relying_party_demo.common.layout import is_enabled
from relying_party_demo.common.layout import make_app
from relying_party_demo.common.oidc_views import bp

# The demo seed registers Notes with this secret; a real deployment sets NOTES_CLIENT_SECRET.
DEMO_CLIENT_SECRET = "notes-demo-secret-not-for-production-0001"  # noqa: S105


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Notes app; ``config`` overrides the environment (NOTES_*, IDP_ISSUER)."""
    settings = load_settings(
        {
            "NOTES_CLIENT_ID": "notes",
            "NOTES_CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "NOTES_SILENT_LOGIN": "1",
        },
        config,
    )
    app = make_app(
        __name__, "notes", "Notes", "Your team's notes, behind single sign-on.", settings
    )
    rp = oidc.RelyingParty(
        client_id=settings["NOTES_CLIENT_ID"],
        client_secret=settings["NOTES_CLIENT_SECRET"],
        base_url=settings["NOTES_BASE_URL"],
        silent_login=is_enabled(settings["NOTES_SILENT_LOGIN"]),
    )
    oidc.init_app(app, rp)
    app.register_blueprint(bp)
    return app
