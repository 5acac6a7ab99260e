"""Passwordless login with a discoverable passkey (WebAuthn §7.2), and its checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from idp.models.login import LoginSession
from idp.models.passkey import Passkey
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers.authenticator import SoftAuthenticator
from tests.helpers.authenticator import enrol
from tests.helpers.authenticator import passkey_login
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count


@pytest.fixture
def authenticator(app: Flask, http: FlaskClient, logged_in: TestUser) -> SoftAuthenticator:
    """Alice's passkey, enrolled; the browser is signed out again."""
    authenticator = SoftAuthenticator()
    assert enrol(http, authenticator).status_code == 303
    AuthActions(http).logout()
    return authenticator


def audit(app: Flask, event: str) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        return list(db.get_session().scalars(query))


def sign_count(app: Flask) -> int:
    with app.app_context():
        return int(db.get_session().scalar(select(Passkey.sign_count)) or 0)


def test_passkey_login_gives_hwk_and_mfa_in_the_id_token(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    client = oidc.register(app)
    started = oidc.authorize(http, client)
    next_url = started.headers["Location"].split("next=", 1)[1]
    from urllib.parse import unquote

    response = passkey_login(http, authenticator, next_url=unquote(next_url))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/authorize?")
    tokens = oidc.issue_tokens(http, client)
    claims = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert claims["amr"] == ["hwk", "mfa"]
    assert sign_count(app) == 1


def test_without_user_verification_a_passwordless_login_is_refused(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    options = http.post(
        "/login/passkey/options", data={"csrf_token": csrf_token(http.get("/login").data)}
    )
    assert options.status_code == 200 and options.get_json()["userVerification"] == "required"
    before = count(app, LoginSession)  # the enrolment's
    response = passkey_login(http, authenticator, user_verified=False)
    assert response.status_code == 401
    assert count(app, LoginSession) == before
    [event] = [e for e in audit(app, "login_failure") if e.details.get("method") == "passkey"]
    assert event.details["reason"] == "user_not_verified"


def test_an_unsafe_next_is_ignored(http: FlaskClient, authenticator: SoftAuthenticator) -> None:
    response = passkey_login(http, authenticator, next_url="//evil.example/")
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_counter_that_goes_back_is_refused_and_audited(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    assert passkey_login(http, authenticator, sign_count=5).status_code == 302
    AuthActions(http).logout()
    before = count(app, LoginSession)
    response = passkey_login(http, authenticator, sign_count=3)
    assert response.status_code == 401
    assert b"Sign-in with a passkey failed" in response.data
    assert count(app, LoginSession) == before and sign_count(app) == 5
    [event] = audit(app, "passkey_sign_count_regression")
    assert event.details["stored"] == 5 and event.details["received"] == 3


def test_an_authenticator_without_a_counter_is_accepted(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    for _ in range(2):
        assert passkey_login(http, authenticator, sign_count=0).status_code == 302
        AuthActions(http).logout()
    assert sign_count(app) == 0


def test_an_unknown_credential_or_a_wrong_user_handle_is_refused(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    stranger = SoftAuthenticator(user_handle=authenticator.user_handle)
    assert passkey_login(http, stranger).status_code == 401
    assert passkey_login(http, authenticator, user_handle=b"someone-else").status_code == 401
    assert count(app, LoginSession) == 1  # the enrolling login only, ended
    reasons = [event.details["reason"] for event in audit(app, "login_failure")]
    assert reasons == ["unknown_credential", "user_handle_mismatch"]


def test_a_signature_by_another_key_is_refused(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    forger = SoftAuthenticator(
        credential_id=authenticator.credential_id, user_handle=authenticator.user_handle
    )
    assert passkey_login(http, forger).status_code == 401
    assert count(app, LoginSession) == 1 and sign_count(app) == 0


def test_a_challenge_cannot_be_replayed(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    token = csrf_token(http.get("/login").data)
    options = http.post("/login/passkey/options", data={"csrf_token": token}).get_json()
    form = {"csrf_token": token, "credential": json.dumps(authenticator.get(options))}
    assert http.post("/login/passkey/verify", data=form).status_code == 302
    AuthActions(http).logout()
    token = csrf_token(http.get("/login").data)
    form["csrf_token"] = token
    assert http.post("/login/passkey/verify", data=form).status_code == 401
    # Nor from another browser, which never held the challenge.
    other = http.application.test_client()
    token = csrf_token(other.get("/login").data)
    form["csrf_token"] = token
    assert other.post("/login/passkey/verify", data=form).status_code == 401
    assert count(app, LoginSession) == 2


def test_a_disabled_user_cannot_sign_in_with_a_passkey(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    with app.app_context():
        from idp.users import service as users

        users.disable_user("alice@example.com")
    assert passkey_login(http, authenticator).status_code == 401
    assert count(app, LoginSession) == 1


def test_a_passkey_login_replaces_another_users_session(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    bob = make_user(app, "bob@example.com", "bob's long password")
    assert AuthActions(http).login(bob.email, bob.password).status_code == 302
    assert passkey_login(http, authenticator).status_code == 302
    with app.app_context():
        live = db.get_session().scalars(
            select(LoginSession.user_id).where(LoginSession.revoked_at.is_(None))
        )
        assert list(live) == [1]


def test_failures_count_with_wrong_passwords_towards_the_ip_limit(
    settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    settings["login_rate_limit"] = "3 per minute"
    http: FlaskClient = request.getfixturevalue("http")
    stranger = SoftAuthenticator(user_handle=b"x")
    assert passkey_login(http, stranger).status_code == 401
    assert AuthActions(http).login("nobody@example.com", "wrong").status_code == 401
    assert passkey_login(http, stranger).status_code == 401
    throttled = passkey_login(http, stranger)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0


def test_the_login_page_loads_the_script_and_no_inline_one(http: FlaskClient) -> None:
    page = http.get("/login")
    text = page.get_data(as_text=True)
    assert 'src="/static/passkeys.js"' in text and 'data-passkey="get"' in text
    assert "<script>" not in text and "onclick" not in text
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]


def test_a_forced_login_with_the_passkey_keeps_the_session(
    app: Flask, http: FlaskClient, authenticator: SoftAuthenticator
) -> None:
    assert passkey_login(http, authenticator).status_code == 302
    with app.app_context():
        live = select(LoginSession).where(LoginSession.revoked_at.is_(None))
        sid = db.get_session().scalar(live.with_only_columns(LoginSession.sid))
    assert passkey_login(http, authenticator, force=True).status_code == 302
    with app.app_context():
        [login] = db.get_session().scalars(live)
        assert login.sid == sid and login.amr == ["hwk", "mfa"]
