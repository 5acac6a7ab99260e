"""Synchronizer-token CSRF protection for every HTML form (OWASP CSRF cheat sheet)."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask
from flask import abort
from flask import request
from flask import session

_KEY = "_csrf_token"
FIELD = "csrf_token"


def get_token() -> str:
    """Return this browser session's CSRF token, creating it on first use."""
    token = session.get(_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_KEY] = token
    return token


def validate() -> None:
    """Abort with 400 unless the submitted form carries this session's token."""
    expected = session.get(_KEY)
    submitted = request.form.get(FIELD, "")
    # Bytes: compare_digest refuses non-ASCII str, and a hostile form must not cause a 500.
    if not isinstance(expected, str) or not hmac.compare_digest(
        expected.encode(), submitted.encode()
    ):
        abort(400, description="The form expired or did not come from this site. Please retry.")


def init_app(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = get_token
