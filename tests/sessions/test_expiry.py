"""Idle and absolute expiry, revocation: an ended session is as good as none."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from idp.sessions import service
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser


def test_idle_session_expires(
    app: Flask, auth: AuthActions, logged_in: TestUser, clock: Clock
) -> None:
    clock.advance(hours=7, minutes=59)
    assert auth.http.get("/").status_code == 200  # activity resets the idle timer
    clock.advance(hours=7, minutes=59)
    assert auth.http.get("/").status_code == 200
    clock.advance(hours=8, seconds=1)
    response = auth.http.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_absolute_expiry_holds_even_with_activity(
    app: Flask, auth: AuthActions, logged_in: TestUser, clock: Clock
) -> None:
    for _ in range(3):
        clock.advance(hours=7)
        assert auth.http.get("/").status_code == 200
    clock.advance(hours=3, seconds=1)  # 24 h after login
    assert auth.http.get("/").status_code == 302


def test_timeouts_follow_the_settings(settings: dict[str, object], clock: Clock) -> None:
    from idp import create_app
    from tests.conftest import make_user
    from tests.conftest import reset_schema

    settings.update(session_idle_timeout=60, session_absolute_timeout=120)
    app = create_app(settings)
    app.extensions["idp.clock"] = clock
    reset_schema(app)
    user = make_user(app, "dave@example.com", "dave-password")
    auth = AuthActions(app.test_client())
    auth.login(user.email, user.password)
    clock.advance(seconds=59)
    assert auth.http.get("/").status_code == 200
    clock.advance(seconds=61)
    assert auth.http.get("/").status_code == 302
    db.get_database(app).engine.dispose()


def test_revoked_session_is_refused(app: Flask, auth: AuthActions, logged_in: TestUser) -> None:
    with app.app_context():
        login = db.get_session().scalar(select(LoginSession))
        assert login is not None
        assert service.revoke_login(login, reason="admin_revoked") is True
        assert service.revoke_login(login, reason="admin_revoked") is False
    assert auth.http.get("/").status_code == 302


def test_the_cookie_does_not_survive_a_database_copy(
    app: Flask, auth: AuthActions, logged_in: TestUser
) -> None:
    # The database keeps only a hash of the browser token: a stored value is no cookie.
    with app.app_context():
        login = db.get_session().scalar(select(LoginSession))
        assert login is not None
        stolen = login.token_hash
    with auth.http.session_transaction() as cookie_session:
        cookie_session["_user_id"] = stolen
    assert auth.http.get("/").status_code == 302


def test_last_seen_is_written_at_most_once_a_minute(
    app: Flask, auth: AuthActions, logged_in: TestUser, clock: Clock
) -> None:
    def last_seen() -> object:
        with app.app_context():
            return db.get_session().scalar(select(LoginSession.last_seen_at))

    first = last_seen()
    clock.advance(seconds=30)
    auth.http.get("/")
    assert last_seen() == first
    clock.advance(seconds=31)
    auth.http.get("/")
    assert last_seen() == clock.now
