"""TOTP at /account/security: set up with a QR code, confirm with a first code, recovery codes."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs
from urllib.parse import unquote
from urllib.parse import urlsplit

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from idp.models import RecoveryCode
from idp.models import TotpFactor
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import mfa
from tests.helpers.mfa import CODES
from tests.helpers.mfa import SECRET
from tests.helpers.mfa import enrol_through_the_page
from tests.helpers.mfa import post_security as post
from tests.helpers.rows import count

QR = re.compile(r'<img class="qr" src="(data:image/svg\+xml[^"]+)"')


def test_the_page_shows_a_server_rendered_qr_code_of_the_otpauth_uri(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    page = post(http, action="start")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    secret = SECRET.search(html)
    qr = QR.search(html)
    assert secret and qr
    # The QR code is an inline SVG image: the CSP's img-src allows data:, no script runs.
    csp = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in csp and "unsafe-inline" not in csp
    svg = unquote(qr.group(1).split(",", 1)[1])
    assert svg.startswith("<?xml") or "<svg" in svg[:200]
    assert "<script" not in svg
    # The secret typed by hand is the one the QR encodes (segno's URI is the authenticator's).
    with app.app_context():
        from idp.mfa import service
        from idp.users.service import require_user_by_email

        enrolment = service.get_enrolment(require_user_by_email(logged_in.email))
    assert enrolment is not None and enrolment.secret == secret.group(1)
    uri = urlsplit(enrolment.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert parse_qs(uri.query)["secret"] == [secret.group(1)]
    assert parse_qs(uri.query)["issuer"] == ["idp.test"]
    assert logged_in.email in unquote(uri.path)
    # Not on yet: a login still needs the password only.
    assert count(app, TotpFactor) == 1
    with app.app_context():
        factor = db.get_session().scalar(select(TotpFactor))
        assert factor is not None and factor.confirmed_at is None
        # Stored encrypted: the database alone does not hold the secret.
        assert secret.group(1) not in factor.secret_encrypted
        assert secret.group(1).encode() not in base64.urlsafe_b64decode(
            factor.secret_encrypted + "=="
        )


def test_a_wrong_first_code_turns_nothing_on(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    started = post(http, action="start")
    secret = SECRET.search(started.get_data(as_text=True))
    assert secret is not None
    wrong = f"{(int(mfa.code(secret.group(1), clock.now)) + 7) % 1_000_000:06d}"
    response = post(http, action="confirm", otp=wrong)
    assert response.status_code == 400
    assert "not the one your app shows" in response.get_data(as_text=True)
    assert count(app, RecoveryCode) == 0
    with app.app_context():
        factor = db.get_session().scalar(select(TotpFactor))
        assert factor is not None and factor.confirmed_at is None


def test_confirming_shows_ten_recovery_codes_once_and_the_next_login_asks_for_a_code(
    app: Flask, http: FlaskClient, auth: AuthActions, logged_in: TestUser, clock: Clock
) -> None:
    secret, codes = enrol_through_the_page(http, clock.now)
    assert len(codes) == 10 == len(set(codes))
    with app.app_context():
        stored = list(db.get_session().scalars(select(RecoveryCode.code_hash)))
        # This browser proved the factor: its session is multi-factor now.
        [login] = db.get_session().scalars(select(LoginSession))
        assert login.amr == ["pwd", "otp", "mfa"]
    assert len(stored) == 10 and not set(codes) & set(stored)  # hashed
    page = http.get("/account/security").get_data(as_text=True)
    assert "10 unused recovery code(s)" in page
    assert not CODES.search(page)  # shown once only
    other = app.test_client()
    assert AuthActions(other).login(logged_in.email, logged_in.password).status_code == 303
    clock.advance(seconds=30)
    assert mfa.submit_otp(other, pyotp.TOTP(secret).at(clock.now)).status_code == 303


def test_a_recovery_code_logs_in_once_only(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    _, codes = enrol_through_the_page(http, clock.now)
    browser = app.test_client()
    AuthActions(browser).login(logged_in.email, logged_in.password)
    # Typed as people type: upper case, spaces instead of dashes.
    assert mfa.submit_otp(browser, codes[3].upper().replace("-", " ")).status_code == 303
    again = app.test_client()
    AuthActions(again).login(logged_in.email, logged_in.password)
    assert mfa.submit_otp(again, codes[3]).status_code == 401
    assert mfa.submit_otp(again, codes[4]).status_code == 303
    assert "8 unused recovery code(s)" in http.get("/account/security").get_data(as_text=True)


def test_new_recovery_codes_and_turning_off_need_a_code_or_the_password(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    secret, old = enrol_through_the_page(http, clock.now)
    refused = post(http, action="recovery_codes")
    assert refused.status_code == 303
    assert "Give a current code" in http.get("/account/security").get_data(as_text=True)
    renewed = post(http, action="recovery_codes", current_password=logged_in.password)
    new = CODES.findall(renewed.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    browser = app.test_client()
    AuthActions(browser).login(logged_in.email, logged_in.password)
    assert mfa.submit_otp(browser, old[0]).status_code == 401
    clock.advance(seconds=30)
    assert post(http, action="disable", otp="123").status_code == 303
    assert count(app, TotpFactor) == 1
    post(http, action="disable", otp=mfa.code(secret, clock.now))
    assert count(app, TotpFactor) == count(app, RecoveryCode) == 0
    assert AuthActions(browser).login(logged_in.email, logged_in.password).status_code == 302
