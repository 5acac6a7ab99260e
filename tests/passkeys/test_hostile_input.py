"""Generated hostile passkey responses: a 401 (or 429), never a 500, and nothing changes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from idp import db
from idp.models.login import LoginSession
from idp.models.passkey import Passkey
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers.authenticator import SoftAuthenticator
from tests.helpers.authenticator import enrol
from tests.helpers.forms import csrf_token

fuzz = hypothesis_settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FIELDS = ("id", "rawId", "type", "clientDataJSON", "authenticatorData", "signature", "userHandle")
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.sampled_from(["", "AA", "____", "-_-_", "=", "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0"]),
)


def state(app: Flask) -> tuple[Any, ...]:
    with app.app_context():
        session = db.get_session()
        logins = session.scalars(select(LoginSession.id)).all()
        return tuple(logins), tuple(session.execute(select(Passkey.sign_count)).all())


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings["login_rate_limit"] = "1000 per minute"  # the fuzzing IP is not throttled
    return settings


@pytest.fixture
def authenticator(http: FlaskClient, logged_in: TestUser) -> SoftAuthenticator:
    """Alice's passkey, enrolled once for all the examples; the browser signed out again."""
    authenticator = SoftAuthenticator()
    assert enrol(http, authenticator).status_code == 303
    AuthActions(http).logout()
    return authenticator


@fuzz
@given(field=st.sampled_from(FIELDS), value=values, drop=st.booleans())
def test_a_broken_assertion_is_refused_and_changes_nothing(
    app: Flask,
    http: FlaskClient,
    authenticator: SoftAuthenticator,
    field: str,
    value: Any,
    drop: bool,
) -> None:
    before = state(app)
    token = csrf_token(http.get("/login").data)
    options = http.post("/login/passkey/options", data={"csrf_token": token}).get_json()
    answer = authenticator.get(options)
    authenticator.sign_count -= 1  # not used: the next example's counter is still fresh
    target = answer if field in ("id", "rawId", "type") else answer["response"]
    if drop:
        target.pop(field, None)
    else:
        target[field] = value
    form = {"csrf_token": token, "credential": json.dumps(answer)}
    response = http.post("/login/passkey/verify", data=form)
    assert response.status_code == 401, response.data[:300]
    assert state(app) == before


def test_starting_ceremonies_is_limited_per_ip(
    settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr("idp.passkeys.views.OPTIONS_RATE", "2 per minute")
    http: FlaskClient = request.getfixturevalue("http")
    token = csrf_token(http.get("/login").data)
    statuses = [
        http.post("/login/passkey/options", data={"csrf_token": token}).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
