"""The ``otp`` login step: after the right password a user with TOTP owes a code (RFC 6238)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from idp.models import LoginSession
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import mfa
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count


def sessions_of(app: Flask, user: TestUser) -> list[LoginSession]:
    with app.app_context():
        query = select(LoginSession).where(LoginSession.user_id == user.id)
        return list(db.get_session().scalars(query))


def events(app: Flask, event: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.get_session().scalars(select(AuditEvent).where(AuditEvent.event == event)))


def test_the_password_alone_starts_no_session_and_asks_for_the_code(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    mfa.enrol(app, user.email)
    response = auth.login(user.email, user.password, next_url="/account/")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login/otp")
    assert count(app, LoginSession) == 0
    assert http.get("/account/").status_code == 302  # still not logged in
    page = http.get("/login/otp")
    assert re.search(r'<input id="otp" name="otp"', page.get_data(as_text=True))
    assert page.headers["Cache-Control"] == "no-store"


def test_a_code_from_pyotp_logs_in_with_amr_pwd_otp_mfa(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    auth.login(user.email, user.password, next_url="/account/")
    response = mfa.submit_otp(http, mfa.code(secret, clock.now))
    assert response.status_code == 303
    assert response.headers["Location"] == "/account/"
    [login] = sessions_of(app, user)
    assert login.amr == ["pwd", "otp", "mfa"]
    assert login.acr == "2"
    assert http.get("/account/").status_code == 200
    # Next login, 30 s on: the code just used (now the previous period's) is a replay.
    http.post("/logout", data={"csrf_token": csrf_token(http.get("/logout").data)})
    clock.advance(seconds=30)
    auth.login(user.email, user.password)
    assert mfa.submit_otp(http, mfa.code(secret, clock.now, steps=-1)).status_code == 401
    assert mfa.submit_otp(http, mfa.code(secret, clock.now)).status_code == 303


def test_a_wrong_code_is_refused_and_changes_nothing(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    auth.login(user.email, user.password)
    wrong = f"{(int(mfa.code(secret, clock.now)) + 1) % 1_000_000:06d}"
    response = mfa.submit_otp(http, wrong)
    assert response.status_code == 401
    assert "Invalid code." in response.get_data(as_text=True)
    assert count(app, LoginSession) == 0
    # The pending step survives a typo: the right code still works.
    assert mfa.submit_otp(http, mfa.code(secret, clock.now)).status_code == 303


def test_a_replayed_code_is_refused_within_its_window(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    used = mfa.code(secret, clock.now)
    auth.login(user.email, user.password)
    assert mfa.submit_otp(http, used).status_code == 303
    other = app.test_client()
    AuthActions(other).login(user.email, user.password)
    clock.advance(seconds=20)  # still within the code's window
    assert mfa.submit_otp(other, used).status_code == 401
    assert len(sessions_of(app, user)) == 1
    assert [e.details["reason"] for e in events(app, "login_failure")] == ["bad_otp"]


def test_the_pending_step_expires(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    auth.login(user.email, user.password)
    page = http.get("/login/otp")
    clock.advance(minutes=6)
    response = http.post(
        "/login/otp",
        data={"csrf_token": csrf_token(page.data), "otp": mfa.code(secret, clock.now)},
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login")
    assert count(app, LoginSession) == 0


def test_without_a_password_there_is_no_otp_step(app: Flask, http: FlaskClient) -> None:
    assert http.get("/login/otp").headers["Location"].endswith("/login")


def test_wrong_codes_lock_the_account_like_wrong_passwords(
    counters: str, app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    auth.login(user.email, user.password)
    for _ in range(5):  # IDP_LOGIN_MAX_FAILURES
        assert mfa.submit_otp(http, "000000").status_code == 401
    assert [e.user_id for e in events(app, "account_locked")] == [user.id]
    # Locked: the right code fails too, with the same message; so does the password step.
    right = mfa.submit_otp(http, mfa.code(secret, clock.now))
    assert right.status_code == 401
    assert "Invalid code." in right.get_data(as_text=True)
    assert auth.login(user.email, user.password).status_code == 401
    assert count(app, LoginSession) == 0
    if counters == "redis":  # Redis expires the lock by its own clock: lift it as an admin does
        with app.app_context():
            from idp.users.service import require_user_by_email
            from idp.users.service import unlock_user

            unlock_user(require_user_by_email(user.email))
    else:
        clock.advance(seconds=901)  # IDP_LOGIN_LOCKOUT
    auth.login(user.email, user.password)
    assert mfa.submit_otp(http, mfa.code(secret, clock.now)).status_code == 303


@pytest.fixture
def three_per_minute(settings: dict[str, Any]) -> None:
    settings["login_rate_limit"] = "3 per minute"


def test_the_per_ip_limit_covers_the_otp_step(
    three_per_minute: None, app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    mfa.enrol(app, user.email)
    auth.login(user.email, user.password)
    assert [mfa.submit_otp(http, "000000").status_code for _ in range(3)] == [401] * 3
    throttled = mfa.submit_otp(http, "000000")
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 60
    # Shared with the password form: the same IP is throttled there too.
    assert auth.login(user.email, "wrong").status_code == 429


def test_a_secret_stored_under_another_secret_key_accepts_no_code(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    app.config["SECRET_KEY"] = "a new secret key for this test"  # IDP_SECRET_KEY changed
    auth.login(user.email, user.password)
    assert mfa.submit_otp(http, mfa.code(secret, clock.now)).status_code == 401
    assert count(app, LoginSession) == 0
