"""The console's token pages: any user's tokens with their last use, usage, revoke; the policy.

Through HTTP on SQLite and PostgreSQL, each form a real POST with the page's CSRF token.
"""

from __future__ import annotations

from html import unescape
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.account.conftest import PHONE
from tests.account.conftest import sign_in
from tests.admin.conftest import post
from tests.admin.test_console import acted_by
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token
from tests.helpers.receiver import audit_events
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats

PAGE = "/admin/tokens"


def page_text(http: FlaskClient, path: str = PAGE) -> str:
    response = http.get(path)
    assert response.status_code == 200, response.status_code
    return unescape(response.get_data(as_text=True))


def test_the_console_lists_any_users_tokens_shows_usage_and_revokes(
    app: Flask, http: FlaskClient, console: FlaskClient, admin: TestUser, user: TestUser
) -> None:
    pat = create_pat(app, user.email, "--scope", "openid", "--expires-in", "7", name="nightly")
    used = http.get(
        "/userinfo",
        headers={**bearer(pat["token"]), "User-Agent": "nightly-job/3"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert used.status_code == 200
    listing = page_text(console)
    assert "nightly" in listing and user.email in listing and pat["token"][:16] in listing
    assert "from 203.0.113.9" in listing and pat["token"] not in listing
    assert (
        "admin@example.com"
        not in page_text(console, f"{PAGE}?user={user.email}")
        .split("</nav>")[1]
        .split("<fieldset>")[0]
    )
    usage = page_text(console, f"{PAGE}/{pat['id']}")
    assert "203.0.113.0/24" in usage and "nightly-job/3" in usage and "userinfo" in usage
    assert console.get(f"{PAGE}/99999").status_code == 404
    assert console.get(f"{PAGE}/x1").status_code == 404

    response = post(console, PAGE, action="revoke", id=str(pat["id"]))
    assert response.status_code == 303
    assert http.get("/userinfo", headers=bearer(pat["token"])).status_code == 401
    [row] = list_pats(app)
    assert row["revoked_at"] is not None
    [event] = audit_events(app, "pat_revoked")
    assert event.details["reason"] == "admin_revoked"
    assert acted_by(app, "pat_revoked") == [admin.id]
    assert post(console, PAGE, action="revoke", id="99999").status_code == 404


def test_only_admins_reach_the_token_pages(
    app: Flask, console: FlaskClient, user: TestUser
) -> None:
    pat = create_pat(app, user.email, "--scope", "openid")
    alice = sign_in(app, user, PHONE)
    assert alice.get(PAGE).status_code == 403
    assert alice.get(f"{PAGE}/{pat['id']}").status_code == 403
    token = post(console, PAGE, action="noop")  # a console form, posted by alice
    assert token.status_code == 400
    mine = csrf_token(alice.get("/account/tokens").data)
    refused = alice.post(PAGE, data={"csrf_token": mine, "action": "revoke", "id": pat["id"]})
    assert refused.status_code == 403
    no_csrf = console.post(PAGE, data={"action": "revoke", "id": pat["id"]})
    assert no_csrf.status_code == 400
    assert list_pats(app)[0]["revoked_at"] is None


def policy(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "action": "policy",
        "enabled": "yes",
        "max_lifetime": "30",
        "scope": ["openid", "email"],
    }
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def test_the_admin_sets_the_policy_and_it_applies_at_once(
    app: Flask, http: FlaskClient, console: FlaskClient, logged_in: TestUser
) -> None:
    kept = create_pat(app, logged_in.email, "--scope", "openid", "--expires-in", "90")
    response = post(console, PAGE, **policy(allow_no_expiry="yes"))
    assert response.status_code == 303
    [event] = audit_events(app, "pat_policy_changed")
    assert event.details["max_lifetime"] == 30 and event.details["allowed_scopes"] == [
        "openid",
        "email",
    ]
    form = page_text(http, "/account/tokens")
    assert 'value="profile"' not in form and 'value="email"' in form
    assert 'value="90"' not in form and 'value="never"' in form
    refused = run(app, "token", "create", logged_in.email, "--name", "x", "--expires-in", "31")
    assert refused.exit_code == 1 and "at most 30 days" in refused.output
    refused = run(app, "token", "create", logged_in.email, "--name", "x", "--scope", "profile")
    assert refused.exit_code == 1 and "not allowed" in refused.output
    assert http.get("/userinfo", headers=bearer(kept["token"])).status_code == 200  # kept

    assert post(console, PAGE, **policy(enabled=None)).status_code == 303  # tokens off
    assert http.get("/userinfo", headers=bearer(kept["token"])).status_code == 401
    assert "turned off" in page_text(http, "/account/tokens")
    refused = run(app, "token", "create", logged_in.email, "--name", "x")
    assert refused.exit_code == 1 and "turned off" in refused.output

    assert post(console, PAGE, action="reset_policy").status_code == 303
    assert audit_events(app, "pat_policy_reset")
    assert http.get("/userinfo", headers=bearer(kept["token"])).status_code == 200
    assert 'value="90"' in page_text(http, "/account/tokens")


def test_a_bad_policy_is_refused_and_changes_nothing(
    app: Flask, console: FlaskClient, clock: Clock
) -> None:
    for bad in (
        policy(max_lifetime="0"),
        policy(max_lifetime="366"),
        policy(max_lifetime="ninety"),
        policy(scope=[]),
        policy(scope=["openid", "root"]),
    ):
        response = post(console, PAGE, **bad)
        assert response.status_code == 400, bad
        assert "Policy:" in unescape(response.get_data(as_text=True))
    assert audit_events(app, "pat_policy_changed") == []
    assert "From the configuration" in page_text(console)
    clock.advance(minutes=11)  # a stale login confirms with the password first
    stale = post(console, PAGE, **policy())
    assert stale.status_code == 302 and stale.headers["Location"].startswith("/login")
    assert audit_events(app, "pat_policy_changed") == []
