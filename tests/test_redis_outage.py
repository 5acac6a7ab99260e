"""Redis down: what needs it answers a clean 503 and /readyz fails; Redis back: recovered.

The Redis is the test's own (``private_redis``), stopped and started again mid-test; the
app is never rebuilt, so the recovery is the running process's own.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.admin.conftest import API
from tests.admin.conftest import client_credentials_token
from tests.admin.conftest import service_account
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers.forms import csrf_token
from tests.helpers.redis_server import RedisServer


@pytest.fixture(autouse=True)
def _use_private_redis(settings: dict[str, Any], private_redis: RedisServer) -> None:
    settings["redis_url"] = private_redis.url


def assert_unavailable_json(response: Any, error_key: str = "error") -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()[error_key] == "temporarily_unavailable"


def test_redis_down_refuses_cleanly_and_recovers_without_restart(
    app: Flask, http: FlaskClient, user: TestUser, private_redis: RedisServer
) -> None:
    auth = AuthActions(http)
    robot = service_account(app)
    assert auth.login(user.email, user.password).status_code == 302
    assert http.get("/readyz").status_code == 200
    assert client_credentials_token(http, robot).status_code == 200

    private_redis.stop()

    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "unreachable"}
    # The token endpoint counts failures in Redis: RFC 6749's temporarily_unavailable.
    tokens = client_credentials_token(http, robot)
    assert_unavailable_json(tokens)
    assert set(tokens.get_json()) == {"error", "error_description"}
    # A browser gets a page (the login form counts failures and lockouts in Redis).
    other = app.test_client()
    page = other.get("/login")
    login = other.post(
        "/login",
        data={"csrf_token": csrf_token(page.data), "username": user.email, "password": "x"},
    )
    assert login.status_code == 503
    assert login.mimetype == "text/html"
    assert b"temporarily unavailable" in login.data
    assert b"Traceback" not in login.data and str(private_redis.port).encode() not in login.data
    # The admin API answers RFC 9457 problem details.
    api = http.get(f"{API}/users", headers={"Authorization": "Bearer not-checked"})
    assert api.status_code == 503
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["status"] == 503
    # What needs no Redis still works: a logged-in browser's pages, and a revocation, which
    # the database holds (Redis keeps no session state that could lose it).
    assert http.get("/account/").status_code == 200
    assert auth.logout().status_code == 200
    assert http.get("/account/").status_code == 302

    private_redis.start()

    assert http.get("/readyz").status_code == 200
    assert client_credentials_token(http, robot).status_code == 200
    assert AuthActions(app.test_client()).login(user.email, user.password).status_code == 302


@pytest.mark.backends("sqlite")  # Redis's behaviour, whatever the database
def test_a_hanging_redis_answers_503_within_about_a_second(
    app: Flask, http: FlaskClient, private_redis: RedisServer
) -> None:
    robot = service_account(app)
    assert client_credentials_token(http, robot).status_code == 200

    private_redis.pause()
    try:
        start = time.monotonic()
        tokens = client_credentials_token(http, robot)
        waited = time.monotonic() - start
    finally:
        private_redis.resume()

    assert_unavailable_json(tokens)
    # 0.5 s per attempt and one retry (idp.redis_store), not redis-py's default 5 s.
    assert waited < 2.5
    assert client_credentials_token(http, robot).status_code == 200
