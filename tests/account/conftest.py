"""Fixtures for the user's own pages: one user signed in on several devices."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.login import LoginSession
from idp.models.user import User
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import receiver as rx
from tests.helpers.forms import csrf_token

LAPTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
TABLET = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"


def sign_in(app: Flask, user: TestUser, agent: str, ip: str = "192.0.2.10") -> FlaskClient:
    """Return a new browser (its own cookies, User-Agent and address) logged in as ``user``."""
    http = app.test_client()
    http.environ_base.update(HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    response = AuthActions(http).login(user.email, user.password)
    assert response.status_code == 302, response.data
    return http


Device = Callable[..., FlaskClient]


@pytest.fixture
def device(app: Flask, user: TestUser) -> Device:
    """Sign ``user`` in on one more device: ``device(agent, ip=...)``."""
    return lambda agent, **options: sign_in(app, user, agent, **options)


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


def submit(http: FlaskClient, path: str, **form: str) -> Any:
    """Post a form to ``path`` with this browser's CSRF token (read from the profile page)."""
    page = http.get("/account/")
    assert page.status_code == 200, page.status_code
    return http.post(path, data={"csrf_token": csrf_token(page.data), **form})


def is_signed_in(http: FlaskClient) -> bool:
    response = http.get("/account/sessions")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def login_of(app: Flask, agent: str) -> LoginSession:
    """Return the (one) login session started with this User-Agent."""
    with app.app_context():
        (row,) = db.get_session().scalars(
            select(LoginSession).where(LoginSession.user_agent == agent)
        )
        db.get_session().expunge(row)
        return row


def login_states(app: Flask) -> list[tuple[str, Any, Any]]:
    """Every session's sid, end and reason: what a refused request must leave alone."""
    with app.app_context():
        rows = db.get_session().execute(
            select(LoginSession.sid, LoginSession.revoked_at, LoginSession.revoked_reason).order_by(
                LoginSession.id
            )
        )
        return [tuple(row) for row in rows]


def user_row(app: Flask, user_id: int) -> tuple[Any, ...]:
    """The user's stored profile and password hash."""
    with app.app_context():
        row = db.get_session().get(User, user_id)
        assert row is not None
        return (row.name, row.given_name, row.family_name, row.email, row.password_hash)
