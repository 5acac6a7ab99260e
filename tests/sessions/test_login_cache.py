"""Login sessions cached in Redis: found without a SELECT, refused by every replica at once.

Two apps built from the same settings share one database and one Redis, as two replicas
do; neither keeps anything of its own (tests/test_replicas.py does the same with two real
``idp serve`` processes).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.db import get_database
from idp.sessions import cache
from idp.sessions import logout
from idp.sessions import storage
from tests.admin.conftest import API
from tests.admin.conftest import client_credentials_token
from tests.admin.conftest import service_account
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token
from tests.helpers.replicas import browser_on
from tests.helpers.replicas import build_replica
from tests.helpers.replicas import cached_record_key
from tests.helpers.replicas import token_hash_of
from tests.helpers.rows import count_statements


@pytest.fixture(autouse=True)
def _use_redis(settings: dict[str, Any], redis_url: str) -> None:
    settings["redis_url"] = redis_url


@pytest.fixture
def replica(app: Flask, settings: dict[str, Any]) -> Iterator[Flask]:
    """A second app on the same database and Redis, with the same clock."""
    with build_replica(app, settings) as other:
        yield other


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def session_selects(seen: list[str]) -> list[str]:
    return [sql for sql in seen if "FROM login_session" in sql]


def test_a_cached_session_is_found_without_a_select(
    app: Flask, http: FlaskClient, logged_in: TestUser, store: redis.Redis
) -> None:
    with count_statements(app) as first:
        assert http.get("/account/").status_code == 200
    assert len(session_selects(first)) == 1  # the miss reads the row and fills the cache

    with count_statements(app) as second:
        page = http.get("/account/")
    assert page.status_code == 200
    assert logged_in.email.encode() in page.data
    assert session_selects(second) == []
    assert not [sql for sql in second if "FROM user_account" in sql]

    token_hash = token_hash_of(app, http)
    cached = store.get(cached_record_key(token_hash))
    assert cached is not None
    # Keyed by the token's hash; neither the token nor the password hash is stored.
    assert b"argon2" not in cached and b"password" not in cached
    assert 0 < store.pttl(cached_record_key(token_hash)) <= 60_000


def test_a_logout_on_one_replica_is_refused_by_the_other_at_once(
    app: Flask, replica: Flask, http: FlaskClient, logged_in: TestUser, store: redis.Redis
) -> None:
    there = browser_on(replica, http)
    assert http.get("/account/").status_code == 200
    assert there.get("/account/").status_code == 200  # cached by now, on both
    token_hash = token_hash_of(app, http)
    assert store.exists(cached_record_key(token_hash))

    assert AuthActions(http).logout().status_code == 200

    assert not store.exists(cached_record_key(token_hash))
    assert there.get("/account/").status_code == 302
    assert http.get("/account/").status_code == 302


def test_an_admin_revocation_and_a_disabled_user_are_refused_at_once(
    app: Flask, replica: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    bob = make_user(app, "bob@example.com", "bob's password, long enough")
    bob_http = app.test_client()
    assert AuthActions(bob_http).login(bob.email, bob.password).status_code == 302
    alice_there, bob_there = browser_on(replica, http), browser_on(replica, bob_http)
    for browser in (alice_there, bob_there):
        assert browser.get("/account/").status_code == 200
        assert browser.get("/account/").status_code == 200

    assert run(app, "session", "revoke", "--user", logged_in.email).exit_code == 0
    assert alice_there.get("/account/").status_code == 302

    assert run(app, "user", "disable", bob.email).exit_code == 0
    assert bob_there.get("/account/").status_code == 302


def test_a_changed_user_field_shows_at_once_on_the_other_replica(
    app: Flask, replica: Flask, http: FlaskClient, store: redis.Redis
) -> None:
    admin = make_user(app, "root@example.com", "root password, long enough", is_admin=True)
    assert AuthActions(http).login(admin.email, admin.password).status_code == 302
    there = browser_on(replica, http)
    assert there.get("/admin/").status_code == 200
    assert there.get("/admin/").status_code == 200
    assert store.exists(cached_record_key(token_hash_of(app, http)))

    robot = service_account(app)
    token = client_credentials_token(http, robot).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    demoted = http.patch(f"{API}/users/{admin.id}", json={"admin": False}, headers=headers)
    assert demoted.status_code == 200

    assert there.get("/admin/").status_code == 403
    renamed = http.patch(f"{API}/users/{admin.id}", json={"name": "Root Renamed"}, headers=headers)
    assert renamed.status_code == 200
    assert there.get("/account/").status_code == 200
    assert b"Root Renamed" in there.get("/account/").data


def run_in_thread(work: Callable[[], Any]) -> Any:
    """Run ``work`` in another thread (as another process would) and return its result."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and result
    return result[0]


@dataclass
class Browser:
    """One logged-in browser, as replica A (``http``) and replica B (``there``) see it."""

    http: FlaskClient
    there: FlaskClient
    token_hash: str


@pytest.fixture
def browser(app: Flask, replica: Flask, http: FlaskClient, logged_in: TestUser) -> Browser:
    return Browser(http, browser_on(replica, http), token_hash_of(app, http))


def test_a_reader_that_loaded_the_row_before_a_logout_cannot_cache_it_after(
    browser: Browser, store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reader on A: version read, row read (live); logout on B commits; A fills: refused."""
    http, there, token_hash = browser.http, browser.there, browser.token_hash
    read_row = storage.get_login_by_token_hash
    logged_out: list[int] = []

    def read_then_let_the_logout_happen(token_hash: str) -> Any:
        row = read_row(token_hash)
        if threading.current_thread() is threading.main_thread() and not logged_out:
            logged_out.append(run_in_thread(lambda: AuthActions(there).logout().status_code))
        return row

    monkeypatch.setattr(storage, "get_login_by_token_hash", read_then_let_the_logout_happen)
    # The page that read the row before the logout is served; its fill is refused.
    assert http.get("/account/").status_code == 200
    assert logged_out == [200]
    assert not store.exists(cached_record_key(token_hash))
    monkeypatch.undo()
    assert http.get("/account/").status_code == 302
    assert there.get("/account/").status_code == 302


def test_a_reader_during_an_uncommitted_logout_cannot_cache_the_old_row(
    browser: Browser, store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logout on B fenced the record, not yet committed; a reader on A may not cache the row.

    The reader misses, reads the old (live) row and tries to cache it: refused while the
    logout is pending. B commits: both refuse the session.
    """
    http, there, token_hash = browser.http, browser.there, browser.token_hash
    assert http.get("/account/").status_code == 200
    assert store.exists(cached_record_key(token_hash))
    end_handlers = logout.on_sessions_ended
    during: list[int] = []

    def read_before_the_commit(*args: Any, **kwargs: Any) -> None:
        end_handlers(*args, **kwargs)
        assert not store.exists(cached_record_key(token_hash))  # fenced before the row changed
        during.append(run_in_thread(lambda: http.get("/account/").status_code))
        assert not store.exists(cached_record_key(token_hash))

    monkeypatch.setattr(logout, "on_sessions_ended", read_before_the_commit)
    assert AuthActions(there).logout().status_code == 200
    assert during == [200]  # the reader saw the row before the logout committed
    monkeypatch.undo()
    assert not store.exists(cached_record_key(token_hash))
    assert http.get("/account/").status_code == 302
    assert there.get("/account/").status_code == 302


def test_without_redis_every_request_reads_the_database(
    settings: dict[str, Any], app: Flask
) -> None:
    plain = create_app({**settings, "redis_url": None})
    try:
        user = make_user(plain, "carol@example.com", "carol's password, long enough")
        browser = plain.test_client()
        assert AuthActions(browser).login(user.email, user.password).status_code == 302
        for _ in range(2):
            with count_statements(plain) as seen:
                assert browser.get("/account/").status_code == 200
            assert len(session_selects(seen)) == 1
        with plain.app_context():
            assert cache.get_cache() is None
    finally:
        get_database(plain).engine.dispose()


def test_a_reauthentication_replaces_the_cached_record(
    browser: Browser, logged_in: TestUser, store: redis.Redis, clock: Clock
) -> None:
    http, there, key = browser.http, browser.there, cached_record_key(browser.token_hash)
    assert there.get("/account/").status_code == 200
    before = json.loads(store.get(key) or b"{}")["login"]["auth_time"]
    clock.advance(seconds=10)  # the record needs no last_seen_at write yet: it would be used
    page = http.get("/login?force=1")
    form = {"username": logged_in.email, "password": logged_in.password, "force": "1"}
    form["csrf_token"] = csrf_token(page.data)
    assert http.post("/login", data=form).status_code == 302

    assert there.get("/account/").status_code == 200
    after = json.loads(store.get(key) or b"{}")["login"]["auth_time"]
    assert datetime.fromisoformat(after) == clock.now > datetime.fromisoformat(before)


def test_last_seen_is_written_and_idle_expiry_holds_with_the_cache(
    app: Flask, http: FlaskClient, logged_in: TestUser, store: redis.Redis, clock: Clock
) -> None:
    key = cached_record_key(token_hash_of(app, http))
    assert http.get("/account/").status_code == 200
    assert store.exists(key)

    clock.advance(minutes=2)  # last_seen_at is due: the record is not used, the row is written
    with count_statements(app) as seen:
        assert http.get("/account/").status_code == 200
    assert len(session_selects(seen)) == 1
    assert any(sql.startswith("UPDATE login_session SET last_seen_at") for sql in seen)
    assert run(app, "session", "list", "--json").stdout.count(clock.now.isoformat()) == 1
    record = json.loads(store.get(key) or b"{}")
    assert datetime.fromisoformat(record["login"]["last_seen_at"]) == clock.now

    clock.advance(hours=9)  # past the idle timeout: the record (still in Redis) is refused
    assert store.exists(key)
    assert http.get("/account/").status_code == 302
