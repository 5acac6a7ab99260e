"""Wiki: a public OpenID Connect client (PKCE, no secret) with back-channel logout (port 5002).

Start it with ``flask --app relying_party_demo.wiki:create_app run --port 5002`` or
``python -m relying_party_demo.wiki``. Its pages are ``common/oidc_views.py``, shared with Notes.
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


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Wiki app; ``config`` overrides the environment (WIKI_*, IDP_ISSUER)."""
    settings = load_settings({"WIKI_CLIENT_ID": "wiki", "WIKI_SILENT_LOGIN": "1"}, config)
    app = make_app(__name__, "wiki", "Wiki", "The company wiki, for everyone signed in.", settings)
    rp = oidc.RelyingParty(
        client_id=settings["WIKI_CLIENT_ID"],
        client_secret=None,  # a public client: PKCE alone binds the code to this app
        base_url=settings["WIKI_BASE_URL"],
        silent_login=is_enabled(settings["WIKI_SILENT_LOGIN"]),
    )
    oidc.init_app(app, rp)
    app.register_blueprint(bp)
    return app
