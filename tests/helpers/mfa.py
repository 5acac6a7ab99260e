"""Second-factor test helpers: give a user TOTP, compute codes with pyotp, pass the otp step."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers.forms import csrf_token


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


def reset(app: Flask, email: str) -> None:
    """Remove the user's second factors (as ``idp user totp reset`` does)."""
    from idp.mfa import service
    from idp.users.service import require_user_by_email

    with app.app_context():
        service.reset_factors(require_user_by_email(email))
