"""Brute-force defence: account lockout (SQL or Redis counters), per-IP 429, admin unlock."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from tests.admin.conftest import ADMIN_PASSWORD
from tests.admin.conftest import API
from tests.admin.conftest import user_token
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers.cli import run

WRONG = "not the password at all"


@pytest.fixture(params=["sql", "redis"])
def counters(request: pytest.FixtureRequest, settings: dict[str, Any]) -> str:
    """Run each test with the SQL counters and with Redis ones (IDP_REDIS_URL)."""
    if request.param == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_url")  # emptied for this test
    return str(request.param)


def page_text(response: Any) -> str:
    """The page without its CSRF token (a per-session random value)."""
    return re.sub(r'name="csrf_token" value="[^"]*"', "", response.get_data(as_text=True))


def fail(auth: AuthActions, email: str, times: int) -> None:
    for _ in range(times):
        assert auth.login(email, WRONG).status_code == 401


def audited(app: Flask, event: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.get_session().scalars(select(AuditEvent).where(AuditEvent.event == event))
        return list(rows)


def test_the_right_password_fails_once_the_account_is_locked(
    app: Flask, counters: str, auth: AuthActions, user: TestUser
) -> None:
    wrong = auth.login(user.email, WRONG)
    fail(auth, user.email, 4)
    locked = auth.login(user.email, user.password)
    assert locked.status_code == 401
    assert page_text(locked) == page_text(wrong)
    assert "idp_session" not in "".join(locked.headers.getlist("Set-Cookie"))
    [event] = audited(app, "account_locked")
    assert event.user_id == user.id


def test_four_failures_do_not_lock(counters: str, auth: AuthActions, user: TestUser) -> None:
    fail(auth, user.email, 4)
    assert auth.login(user.email, user.password).status_code == 302


def test_an_unknown_account_is_counted_and_answered_the_same(
    app: Flask, counters: str, auth: AuthActions, user: TestUser
) -> None:
    known = auth.login(user.email, WRONG)
    fail(auth, user.email, 4)
    known_locked = auth.login(user.email, user.password)
    nobody = "nobody@example.com"
    unknown = auth.login(nobody, WRONG)
    fail(auth, nobody, 4)
    unknown_locked = auth.login(nobody, WRONG)
    shown = [page_text(r).replace(nobody, user.email) for r in (unknown, unknown_locked)]
    assert shown == [page_text(known), page_text(known_locked)]
    assert [e.user_id for e in audited(app, "account_locked")] == [user.id, None]


def test_the_lock_ends_after_the_lockout(
    app: Flask, counters: str, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    fail(auth, user.email, 5)
    clock.advance(seconds=899)
    assert auth.login(user.email, user.password).status_code == 401
    clock.advance(seconds=2)
    assert auth.login(user.email, user.password).status_code == 302


def test_failures_outside_the_window_are_forgotten(
    auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    # SQL counters (Redis expires the window by its own clock: the live test lets it pass).
    fail(auth, user.email, 4)
    clock.advance(seconds=901)
    fail(auth, user.email, 4)
    assert auth.login(user.email, user.password).status_code == 302


def test_unlock_from_the_command_line(
    app: Flask, counters: str, auth: AuthActions, user: TestUser
) -> None:
    fail(auth, user.email, 5)
    result = run(app, "user", "unlock", user.email)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Unlocked {user.email}.\n"
    assert auth.login(user.email, user.password).status_code == 302
    assert run(app, "user", "unlock", user.email).stdout == f"{user.email} was not locked.\n"


def test_unlock_of_an_unknown_user_is_one_error_line(app: Flask) -> None:
    result = run(app, "user", "unlock", "nobody@example.com")
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_unlock_through_the_admin_api(
    app: Flask, counters: str, auth: AuthActions, user: TestUser
) -> None:
    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    admin_token = user_token(app, admin)
    fail(auth, user.email, 5)
    http = app.test_client()
    response = http.post(f"{API}/users/{user.id}/unlock", headers=admin_token.headers)
    assert response.status_code == 204, response.data
    assert auth.login(user.email, user.password).status_code == 302
    [event] = audited(app, "account_unlocked")
    assert event.user_id == user.id and event.details["was_locked"] is True
    document = http.get(f"{API}/openapi.json").get_json()
    assert "post" in document["paths"][f"{API}/users/{{id}}/unlock"]


def test_unlock_needs_the_admin_scope(
    app: Flask, auth: AuthActions, user: TestUser, http: FlaskClient
) -> None:
    fail(auth, user.email, 5)
    assert http.post(f"{API}/users/{user.id}/unlock").status_code == 401
    assert auth.login(user.email, user.password).status_code == 401


def test_one_ip_gets_429_with_retry_after(
    app: Flask, settings: dict[str, Any], counters: str, http: FlaskClient
) -> None:
    auth = AuthActions(http)
    for number in range(30):
        assert auth.login(f"user{number}@example.com", WRONG).status_code == 401
    throttled = auth.login("someone@example.com", WRONG)
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 60
    other = app.test_client()
    response = AuthActions(other).login("x@example.com", WRONG)
    assert response.status_code == 429  # the same IP from another browser
    elsewhere = other.post("/login", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert elsewhere.status_code != 429


def test_successful_logins_are_not_throttled(
    app: Flask, counters: str, http: FlaskClient, user: TestUser
) -> None:
    for _ in range(35):
        assert AuthActions(app.test_client()).login(user.email, user.password).status_code == 302


def test_a_client_secret_is_locked_after_failures(
    app: Flask, counters: str, http: FlaskClient, clock: Clock
) -> None:
    client = oidc.register(app, "Notes")
    wrong = (client.client_id, "wrong secret")
    form = {"grant_type": "client_credentials"}
    first = http.post("/token", data=form, auth=wrong)
    for _ in range(4):
        assert http.post("/token", data=form, auth=wrong).status_code == 401
    locked = http.post("/token", data=form, auth=client.basic_auth)
    assert locked.status_code == 401
    assert locked.get_json() == first.get_json()
    [event] = audited(app, "client_locked")
    assert event.rp == client.client_id
    clock.advance(seconds=901)
    after = http.post("/token", data=form, auth=client.basic_auth)
    assert after.get_json() != first.get_json()


def test_pat_guessing_from_one_ip_gets_429(counters: str, http: FlaskClient) -> None:
    guess = {"Authorization": "Bearer idp_pat_" + "A" * 40}
    for _ in range(30):
        assert http.get("/userinfo", headers=guess).status_code == 401
    throttled = http.get(f"{API}/users", headers=guess)
    assert throttled.status_code == 429
    assert throttled.mimetype == "application/problem+json"
    assert int(throttled.headers["Retry-After"]) > 0
    userinfo = http.get("/userinfo", headers=guess)
    assert userinfo.status_code == 429
    assert userinfo.get_json()["error"] == "too_many_requests"  # JSON for a program, not a page


def test_two_instances_share_the_redis_counters(
    settings: dict[str, Any], redis_url: str, user: TestUser, app: Flask
) -> None:
    from idp import create_app
    from idp.db import get_database

    first = create_app({**settings, "redis_url": redis_url})
    second = create_app({**settings, "redis_url": redis_url})
    for replica in (first, second):
        replica.extensions["idp.clock"] = app.extensions["idp.clock"]
    try:
        fail(AuthActions(first.test_client()), user.email, 3)
        fail(AuthActions(second.test_client()), user.email, 2)
        locked = AuthActions(first.test_client()).login(user.email, user.password)
        assert locked.status_code == 401
    finally:
        for replica in (first, second):
            get_database(replica).engine.dispose()


def test_failed_client_secrets_from_one_ip_get_429(counters: str, http: FlaskClient) -> None:
    form = {"grant_type": "client_credentials"}
    for number in range(30):
        assert http.post("/token", data=form, auth=(f"c{number}", "guess")).status_code == 401
    throttled = http.post("/token", data=form, auth=("c-last", "guess"))
    assert throttled.status_code == 429
    assert throttled.get_json()["error"] == "too_many_requests"
    assert int(throttled.headers["Retry-After"]) > 0


def test_admins_see_a_lockout_and_lift_it_in_the_console(
    app: Flask, counters: str, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    from datetime import timedelta
    from html import unescape

    from tests.helpers.forms import csrf_token

    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    api = app.test_client()

    def listed() -> dict[str, Any]:
        bearer = user_token(app, admin).headers  # a fresh one: the clock moves
        items = api.get(f"{API}/users", headers=bearer).get_json()["items"]
        return {item["email"]: item["locked_until"] for item in items}

    assert listed() == {user.email: None, admin.email: None}
    fail(auth, user.email, 5)
    until = clock.now + timedelta(seconds=900)
    stamp = until.isoformat().replace("+00:00", "Z")
    assert listed() == {user.email: stamp, admin.email: None}
    one = api.get(f"{API}/users/{user.id}", headers=user_token(app, admin).headers).get_json()
    assert one["locked_until"] == stamp
    schema = api.get(f"{API}/openapi.json").get_json()["components"]["schemas"]["User"]
    assert "locked_until" in schema["required"]

    console = app.test_client()
    assert AuthActions(console).login(admin.email, ADMIN_PASSWORD).status_code == 302
    page = unescape(console.get("/admin/users").get_data(as_text=True))
    assert f"locked until {until:%Y-%m-%d %H:%M} UTC" in page
    assert page.count('value="unlock"') == 1  # the locked account's button only
    form = {"action": "unlock", "user_id": str(user.id)}
    refused = console.post("/admin/users", data=form)  # no CSRF token
    assert refused.status_code == 400 and listed()[user.email] is not None
    done = console.post("/admin/users", data={**form, "csrf_token": csrf_token(page.encode())})
    assert done.status_code == 303
    assert listed()[user.email] is None
    assert "is unlocked" in unescape(console.get("/admin/users").get_data(as_text=True))
    [event] = audited(app, "account_unlocked")
    assert event.details["was_locked"] is True and event.details["actor_user_id"] == admin.id
    assert auth.login(user.email, user.password).status_code == 302
    fail(auth, user.email, 5)
    assert listed()[user.email] is not None
    clock.advance(seconds=901)
    assert listed()[user.email] is None  # a lock that ended is not shown


def test_failed_client_assertions_count_per_client_and_per_ip(
    app: Flask, counters: str, http: FlaskClient
) -> None:
    from tests.oidc.test_client_auth import KeyPair
    from tests.oidc.test_client_auth import register_jwt_client
    from tests.oidc.test_client_auth import with_assertion

    keys = KeyPair()
    client_id = register_jwt_client(app, keys)
    forger = KeyPair(slot=1)  # another key under the same kid
    forger.kid = keys.kid
    form = {"grant_type": "client_credentials"}
    # No client_id in the form (RFC 7523 makes it optional): the assertion's sub is counted.
    for _ in range(5):
        response = http.post("/token", data=with_assertion(forger.assertion(client_id), **form))
        assert response.get_json()["error"] == "invalid_client"
    locked = http.post("/token", data=with_assertion(keys.assertion(client_id), **form))
    assert locked.get_json()["error"] == "invalid_client"  # the real key fails too
    [event] = audited(app, "client_locked")
    assert event.rp == client_id
    # These 400s count toward the IP's rate like 401s: 30 failures, then 429.
    for _ in range(30 - 6):
        http.post("/token", data=with_assertion("not.a.jwt", **form))
    throttled = http.post("/token", data=with_assertion("not.a.jwt", **form))
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
