"""Second-factor test helpers: give a user TOTP, compute codes with pyotp, pass the otp step."""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timedelta
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers.forms import csrf_token

SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
CODES = re.compile(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>")


def enrol(app: Flask, email: str) -> str:
    """Give the user a confirmed TOTP factor (as ``idp user totp enroll``); return its secret."""
    from idp.mfa import service
    from idp.users.service import require_user_by_email

    with app.app_context():
        return service.enroll_now(require_user_by_email(email)).secret


def code(secret: str, now: datetime, steps: int = 0) -> str:
    """Return the code pyotp computes for ``now`` moved by ``steps`` periods of 30 s."""
    return pyotp.TOTP(secret).at(now + timedelta(seconds=30 * steps))


def submit_otp(http: FlaskClient, value: str) -> Any:
    """Answer the pending ``otp`` step with ``value`` (a TOTP or recovery code)."""
    page = http.get("/login/otp")
    assert page.status_code == 200, page.status_code
    return http.post("/login/otp", data={"csrf_token": csrf_token(page.data), "otp": value})


def post_security(http: FlaskClient, **form: str) -> Any:
    """Submit the TOTP form of /account/security with its CSRF token."""
    page = http.get("/account/security")
    return http.post("/account/security/totp", data={"csrf_token": csrf_token(page.data), **form})


def enrol_through_the_page(http: FlaskClient, now: datetime) -> tuple[str, list[str]]:
    """Set TOTP up at /account/security as a user does; return the secret and the codes shown."""
    started = post_security(http, action="start")
    secret = SECRET.search(started.get_data(as_text=True))
    assert secret is not None
    done = post_security(http, action="confirm", otp=code(secret.group(1), now))
    assert done.status_code == 200
    return secret.group(1), CODES.findall(done.get_data(as_text=True))
