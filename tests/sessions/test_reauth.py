"""Forced re-authentication (``prompt=login``, ``max_age``) keeps or replaces the session."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.forms import csrf_token


def sessions(app: Flask) -> list[LoginSession]:
    with app.app_context():
        return list(db.get_session().scalars(select(LoginSession).order_by(LoginSession.id)))


def test_logged_in_user_is_sent_on_unless_forced(auth: AuthActions, logged_in: TestUser) -> None:
    page = auth.http.get("/login?next=/somewhere")
    assert page.status_code == 302 and page.headers["Location"] == "/somewhere"
    forced = auth.http.get("/login?next=/somewhere&force=1")
    assert forced.status_code == 200 and b'name="force" value="1"' in forced.data


def test_forced_login_of_the_same_user_keeps_the_sid_and_renews_auth_time(
    app: Flask, auth: AuthActions, logged_in: TestUser, clock: Clock
) -> None:
    before = sessions(app)[0]
    clock.advance(minutes=30)
    page = auth.http.get("/login?force=1&next=/")
    response = auth.http.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.data),
            "username": logged_in.email,
            "password": logged_in.password,
            "force": "1",
            "next": "/",
        },
    )
    assert response.status_code == 302
    after = sessions(app)
    assert len(after) == 1 and after[0].sid == before.sid
    assert after[0].auth_time == clock.now > before.auth_time


def test_forced_login_as_another_user_replaces_the_session(
    app: Flask, auth: AuthActions, logged_in: TestUser
) -> None:
    bob = make_user(app, "bob@example.com", "bob-password", name="Bob Builder")
    page = auth.http.get("/login?force=1")
    auth.http.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.data),
            "username": bob.email,
            "password": bob.password,
            "force": "1",
        },
    )
    first, second = sessions(app)
    assert first.revoked_reason == "switched_user"
    assert second.revoked_at is None and second.user_id == bob.id
    assert b"Bob Builder" in auth.http.get("/").data


def test_login_hint_prefills_the_username(http: object) -> None:
    from flask.testing import FlaskClient

    assert isinstance(http, FlaskClient)
    page = http.get("/login?login_hint=carol%40example.com")
    assert b'value="carol@example.com"' in page.data
    hostile = http.get('/login?login_hint="><script>x</script>')
    assert b"<script>x" not in hostile.data
