"""The Flask app every demo app starts from: shared templates and CSS, server-side session."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask import abort
from flask import render_template
from flask import request
from flask import session
from flask.typing import ResponseReturnValue

from relying_party_demo.common.config import app_links
from relying_party_demo.common.store import ServerSession
from relying_party_demo.common.store import ServerSessionInterface
from relying_party_demo.common.store import SessionStore

HERE = Path(__file__).resolve().parent
TIME_CLAIMS = {"iat", "exp", "auth_time", "nbf", "updated_at"}
# Every app names its blueprint "rp", so the shared templates can say url_for("rp.home").
FRAMEABLE_ENDPOINTS = {"rp.sls"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def make_app(
    import_name: str, name: str, title: str, tagline: str, settings: Mapping[str, Any]
) -> Flask:
    """Return a Flask app named ``name`` with the shared layout and a server-side session."""
    app = Flask(
        import_name,
        template_folder=str(HERE / "templates"),
        static_folder=str(HERE / "static"),
    )
    app.config.update(settings)
    app.config.update(
        APP_TITLE=title,
        SESSION_COOKIE_NAME=f"{name}_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=str(settings.get(f"{name.upper()}_BASE_URL", "")).startswith(
            "https:"
        ),
    )
    store = SessionStore()
    app.extensions["demo.sessions"] = store
    app.session_interface = ServerSessionInterface(store)
    look = {
        "app_name": name,
        "app_title": title,
        "tagline": tagline,
        "app_links": app_links(settings, name),
    }
    app.context_processor(lambda: {**look, **signed_in()})
    app.add_template_filter(show_value)
    # Browsers ask for /favicon.ico wherever no <link rel="icon"> names the icon.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file(f"favicon-{name}.svg"))
    app.after_request(security_headers)
    app.register_error_handler(400, bad_request)
    app.register_error_handler(404, not_found)
    app.register_error_handler(500, server_error)
    return app


def signed_in() -> dict[str, Any]:
    """Return what every page may show: the signed-in user and the logout form's token."""
    return {"user": session.get("user"), "csrf_token": session.get("csrf_token", "")}


def security_headers(response: Any) -> Any:
    """Keep pages out of caches, out of frames and their address out of Referer headers."""
    # Pages show personal data and carry the logout form's token: keep them out of caches.
    if request.endpoint not in ("static", "favicon"):
        response.headers.setdefault("Cache-Control", "no-store")
    # Front-channel logout loads the IdP-initiated SAML LogoutRequest in an IdP iframe.
    if request.endpoint not in FRAMEABLE_ENDPOINTS:
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def get_store(app: Flask) -> SessionStore:
    """Return the app's session store."""
    store: SessionStore = app.extensions["demo.sessions"]
    return store


def is_enabled(value: Any) -> bool:
    """Read a yes/no setting that may come from the environment as a string."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSE_WORDS
    return bool(value)


def start_user_session(user: Mapping[str, Any]) -> None:
    """Make ``user`` the signed-in user of a fresh session key, with a new logout-form token."""
    session.clear()
    if isinstance(session, ServerSession):
        session.regenerate()
    session["user"] = dict(user)
    session["csrf_token"] = secrets.token_urlsafe(32)


def end_user_session() -> None:
    """Forget the signed-in user and move to a new session key."""
    session.clear()
    if isinstance(session, ServerSession):
        session.regenerate()


def log_out_here() -> dict[str, Any]:
    """End this app's session from its logout form; return the user it held (or {})."""
    require_csrf_token()
    user = dict(session.get("user") or {})
    end_user_session()
    session["silent_checked"] = True  # no silent sign-in straight back
    return user


def require_csrf_token() -> None:
    """Abort with 400 unless the form's ``csrf_token`` is this session's."""
    expected = session.get("csrf_token")
    given = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        abort(400, "The form has expired; reload the page and try again.")


def show_value(value: Any, name: str) -> str:
    """Return a claim's or attribute's value as text; times also in UTC (``|show_value(name)``)."""
    if name in TIME_CLAIMS and isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{value} ({moment})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def render_error(status: int, heading: str, message: str) -> ResponseReturnValue:
    """Render an error page with ``status``."""
    return render_template("error.html", heading=heading, message=message), status


def bad_request(error: Any) -> ResponseReturnValue:
    description = getattr(error, "description", "") or "The request was not understood."
    return render_error(400, "Bad request", description)


def not_found(error: Any) -> ResponseReturnValue:
    return render_error(404, "Not found", "There is no such page here.")


def server_error(error: Any) -> ResponseReturnValue:
    return render_error(500, "Something went wrong", "The error was logged on the server.")
