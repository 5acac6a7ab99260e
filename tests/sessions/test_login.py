"""Login through the real form: CSRF, generic errors, disabled users, cookies, next."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from idp.models import LoginSession
from idp.models import User
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count


def audit_events(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.get_session().scalars(select(AuditEvent.event).order_by(AuditEvent.id)))


def test_login_page_has_the_contract_fields(http: FlaskClient) -> None:
    page = http.get("/login")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'name="username"' in body and 'name="password"' in body
    assert 'type="submit"' in body
    assert csrf_token(body)


def test_login_sets_a_hardened_cookie_and_one_session(
    app: Flask, auth: AuthActions, user: TestUser
) -> None:
    response = auth.login(user.email, user.password)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("idp_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test issuer is http
    assert count(app, LoginSession) == 1
    home = auth.http.get("/")
    assert home.status_code == 200 and user.email in home.get_data(as_text=True)
    assert "login_success" in audit_events(app)


def test_cookie_is_secure_when_the_issuer_is_https(
    settings: dict[str, object], clock: object
) -> None:
    from idp import create_app
    from tests.conftest import reset_schema

    settings["issuer"] = "https://idp.example.com"
    app = create_app(settings)
    reset_schema(app)
    user = make_user(app, "carol@example.com", "pw-carol-123")
    http = app.test_client()
    response = AuthActions(http).login(user.email, user.password)
    cookie = next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("idp_session="))
    assert "Secure" in cookie
    db.get_database(app).engine.dispose()


def test_email_is_case_insensitive(auth: AuthActions, user: TestUser) -> None:
    assert auth.login(user.email.upper(), user.password).status_code == 302


def test_wrong_password_and_unknown_user_give_identical_pages(
    app: Flask, auth: AuthActions, user: TestUser
) -> None:
    wrong_password = auth.login(user.email, "not the password")
    unknown_user = auth.login("nobody@example.com", "not the password")
    assert wrong_password.status_code == unknown_user.status_code == 401
    # Each page shows back the address typed, and differs in nothing else.
    assert wrong_password.data.replace(user.email.encode(), b"EMAIL") == unknown_user.data.replace(
        b"nobody@example.com", b"EMAIL"
    )
    assert b"Invalid email or password." in wrong_password.data
    assert count(app, LoginSession) == 0
    assert audit_events(app).count("login_failure") == 2


def test_disabled_user_is_refused_with_the_same_message(
    app: Flask, auth: AuthActions, user: TestUser
) -> None:
    unknown = auth.login("nobody@example.com", user.password)
    with app.app_context():
        from idp.users.service import disable_user

        disable_user(user.email)
    refused = auth.login(user.email, user.password)
    assert refused.status_code == 401
    assert refused.data.replace(user.email.encode(), b"EMAIL") == unknown.data.replace(
        b"nobody@example.com", b"EMAIL"
    )
    assert count(app, LoginSession) == 0


def test_login_without_csrf_token_is_refused_and_changes_nothing(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    http.get("/login")
    response = http.post("/login", data={"username": user.email, "password": user.password})
    assert response.status_code == 400
    forged = http.post(
        "/login",
        data={"username": user.email, "password": user.password, "csrf_token": "forged"},
    )
    assert forged.status_code == 400
    assert count(app, LoginSession) == 0
    assert "Traceback" not in response.get_data(as_text=True)


def test_missing_and_oversized_fields_are_a_plain_failure(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    token = csrf_token(http.get("/login").data)
    for form in (
        {"csrf_token": token},
        {"csrf_token": token, "username": user.email},
        {"csrf_token": token, "username": user.email, "password": "x" * 5000},
        {"csrf_token": token, "username": "not-an-email", "password": "x"},
    ):
        response = http.post("/login", data=form)
        assert response.status_code == 401, form
        assert b"Invalid email or password." in response.data
    assert count(app, LoginSession) == 0


def test_next_is_followed_only_to_local_paths(auth: AuthActions, user: TestUser) -> None:
    ok = auth.login(user.email, user.password, next_url="/authorize?client_id=x")
    assert ok.headers["Location"] == "/authorize?client_id=x"
    for hostile in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
        auth.logout()
        response = auth.login(user.email, user.password, next_url=hostile)
        assert response.status_code == 302
        assert response.headers["Location"] == "/", hostile


def test_login_replaces_the_pre_login_cookie_session(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    with http.session_transaction() as cookie_session:
        cookie_session["planted"] = "by an attacker"
    auth.login(user.email, user.password)
    with http.session_transaction() as cookie_session:
        assert "planted" not in cookie_session


def test_password_hash_is_upgraded_when_parameters_change(
    app: Flask, settings: dict[str, object], user: TestUser
) -> None:
    from idp import create_app

    with app.app_context():
        old_hash = db.get_session().scalar(select(User.password_hash))
    assert old_hash is not None and old_hash.startswith("$argon2id$")
    stronger = create_app({**settings, "password_hash_time_cost": 2})
    stronger.extensions["idp.clock"] = app.extensions["idp.clock"]
    response = AuthActions(stronger.test_client()).login(user.email, user.password)
    assert response.status_code == 302
    with stronger.app_context():
        new_hash = db.get_session().scalar(select(User.password_hash))
    assert new_hash is not None and new_hash != old_hash and ",t=2," in new_hash
    assert "password_rehashed" in audit_events(stronger)
    db.get_database(stronger).engine.dispose()


def test_logout_ends_the_session(app: Flask, auth: AuthActions, logged_in: TestUser) -> None:
    confirm = auth.http.get("/logout")
    assert b"Sign out?" in confirm.data
    done = auth.logout()
    assert done.status_code == 200 and b"signed out" in done.data
    assert auth.http.get("/").status_code == 302
    with app.app_context():
        login = db.get_session().scalar(select(LoginSession))
        assert login is not None and login.revoked_at is not None
        assert login.revoked_reason == "logout"
    assert "logout" in audit_events(app)


def test_logout_post_needs_csrf(app: Flask, auth: AuthActions, logged_in: TestUser) -> None:
    assert auth.http.post("/logout").status_code == 400
    assert auth.http.get("/").status_code == 200


def test_password_is_never_logged_or_audited(
    app: Flask, auth: AuthActions, user: TestUser, caplog: object
) -> None:
    import logging

    assert hasattr(caplog, "set_level") and hasattr(caplog, "text")
    caplog.set_level(logging.DEBUG)
    auth.login(user.email, "a wrong secret value")
    auth.login(user.email, user.password)
    assert "a wrong secret value" not in caplog.text
    assert user.password not in caplog.text
    with app.app_context():
        rows = db.get_session().scalars(select(AuditEvent)).all()
        dumped = repr([(row.event, row.details) for row in rows])
    assert user.password not in dumped and "a wrong secret value" not in dumped
