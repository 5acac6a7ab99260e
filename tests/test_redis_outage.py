"""Redis down: what needs it answers a clean 503 and /readyz fails; Redis back: recovered.

The Redis is the test's own (``private_redis``), stopped and started again mid-test; the
app is never rebuilt, so the recovery is the running process's own.
"""

from __future__ import annotations

import json
import threading
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
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token
from tests.helpers.redis_server import RedisServer
from tests.helpers.replicas import browser_on
from tests.helpers.replicas import build_replica
from tests.helpers.replicas import cached_record_key
from tests.helpers.replicas import token_hash_of


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
    # A logged-in browser's pages read the session from the database. A logout is refused
    # (the session cache in Redis could not be cleared), never lost: still logged in.
    assert http.get("/account/").status_code == 200
    assert auth.logout().status_code == 503
    assert http.get("/account/").status_code == 200

    private_redis.start()

    assert http.get("/readyz").status_code == 200
    assert auth.logout().status_code == 200
    assert http.get("/account/").status_code == 302
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


def test_a_logout_refused_while_redis_hangs_holds_once_its_old_records_are_back(
    app: Flask,
    http: FlaskClient,
    settings: dict[str, Any],
    logged_in: TestUser,
    private_redis: RedisServer,
) -> None:
    """Redis frozen (its records intact) then resumed: no replica serves a session it lost."""
    import redis

    store = redis.Redis.from_url(private_redis.url)
    key = cached_record_key(token_hash_of(app, http))
    with build_replica(app, settings) as replica:
        there = browser_on(replica, http)
        for browser in (http, there, http, there):
            assert browser.get("/account/").status_code == 200
        assert store.exists(key)

        private_redis.pause()
        try:
            assert AuthActions(http).logout().status_code == 503
            assert http.get("/account/").status_code == 200  # read from the database
        finally:
            private_redis.resume()

        assert store.exists(key)  # the old record is back, and still true: nothing ended
        assert there.get("/account/").status_code == 200
        assert AuthActions(http).logout().status_code == 200
        assert not store.exists(key)
        assert there.get("/account/").status_code == 302
    store.close()


def test_sessions_expire_while_redis_hangs_and_stay_expired_when_it_answers(
    app: Flask,
    http: FlaskClient,
    settings: dict[str, Any],
    logged_in: TestUser,
    private_redis: RedisServer,
    clock: Any,
) -> None:
    """The expiry sweep goes on without Redis: a cached record carries its own expiry."""
    from sqlalchemy import select

    from idp import db
    from idp.models.login import LoginSession
    from idp.sessions import logout

    with build_replica(app, settings) as replica:
        there = browser_on(replica, http)
        assert there.get("/account/").status_code == 200
        clock.advance(hours=9)  # past the 8 h idle timeout
        private_redis.pause()
        try:
            with app.app_context():
                logout.run_maintenance()
        finally:
            private_redis.resume()
        with app.app_context():
            reasons = db.get_session().scalars(select(LoginSession.revoked_reason)).all()
        assert reasons == ["expired"]  # ended by the sweep, though Redis did not answer
        assert there.get("/account/").status_code == 302
        assert http.get("/account/").status_code == 302


def test_a_cli_revocation_while_redis_is_down_is_refused_in_one_line(
    app: Flask, logged_in: TestUser, private_redis: RedisServer
) -> None:
    private_redis.stop()
    assert_one_error_line(run(app, "session", "revoke", "--user", logged_in.email), "Redis")
    private_redis.start()
    listed = run(app, "session", "list", "--user", logged_in.email, "--json")
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 1  # nothing ended
    assert run(app, "session", "revoke", "--user", logged_in.email).exit_code == 0


def test_a_revocation_whose_end_redis_missed_still_fences_a_late_reader(
    app: Flask,
    http: FlaskClient,
    settings: dict[str, Any],
    logged_in: TestUser,
    private_redis: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reads the live row; B's logout fences it, commits, and cannot reach Redis after.

    A's fill comes after all that and is refused: the fence B could not lift stays (until
    it expires), whatever the timing.
    """
    import redis

    from idp.sessions import cache
    from idp.sessions import storage

    store = redis.Redis.from_url(private_redis.url)
    token_hash = token_hash_of(app, http)
    run_change, read_row = cache._run_change, storage.get_login_by_token_hash
    logged_out: list[int] = []

    def unreachable_after_the_commit(*args: Any) -> None:
        if args[1] == "end":  # as from a replica cut off from Redis (a paused Redis would
            raise redis.ConnectionError("unreachable")  # still run the queued command)
        run_change(*args)

    with build_replica(app, settings) as replica:
        there = browser_on(replica, http)

        def read_then_log_out_on_b(token_hash: str) -> Any:
            row = read_row(token_hash)
            if threading.current_thread() is threading.main_thread() and not logged_out:
                worker = threading.Thread(
                    target=lambda: logged_out.append(AuthActions(there).logout().status_code)
                )
                worker.start()
                worker.join(timeout=30)
            return row

        monkeypatch.setattr(cache, "_run_change", unreachable_after_the_commit)
        monkeypatch.setattr(storage, "get_login_by_token_hash", read_then_log_out_on_b)
        assert http.get("/account/").status_code == 200  # read before the logout committed
        monkeypatch.undo()
        assert logged_out == [200]
        assert store.scard(f"idp:login:pending:{token_hash}") == 1
        assert 0 < store.pttl(f"idp:login:pending:{token_hash}")
        assert not store.exists(cached_record_key(token_hash))
        assert http.get("/account/").status_code == 302
        assert there.get("/account/").status_code == 302
    store.close()
