"""``idp token create|list|revoke``: the secret printed once, only its hash stored."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from datetime import timedelta

from flask import Flask
from sqlalchemy import text

from idp import db
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats


def _rows(app: Flask) -> list[dict[str, object]]:
    with app.app_context():
        result = db.get_session().execute(text("SELECT * FROM personal_access_token"))
        return [dict(row._mapping) for row in result]


def test_create_prints_the_token_once_and_stores_only_its_hash(
    app: Flask, user: TestUser, clock: Clock
) -> None:
    created = create_pat(app, user.email, "--scope", "openid", "--scope", "email")
    assert set(created) == {"id", "token", "expires_at", "scopes"}
    assert created["scopes"] == ["openid", "email"]
    # Without --expires-in: the maximum lifetime (90 days by default).
    assert datetime.fromisoformat(created["expires_at"]) == clock.now + timedelta(days=90)
    token = created["token"]
    [row] = _rows(app)
    assert row["secret_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["prefix"] == token[:16]
    assert not any(token in str(value) for value in row.values())
    listed = list_pats(app)
    assert [item["id"] for item in listed] == [created["id"]]
    assert set(listed[0]) == {
        "id",
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    }
    assert token not in json.dumps(listed)
    with app.app_context():
        audit = db.get_session().execute(text("SELECT details FROM audit_event")).all()
    assert audit and not any(token in str(details) for details in audit)


def test_policy_is_enforced_and_refusals_store_nothing(app: Flask, user: TestUser) -> None:
    admin = make_user(app, "root@example.com", "admin password long", is_admin=True)
    cases = [
        ((user.email, "--scope", "admin"), "not allowed"),
        ((user.email, "--expires-in", "91"), "at most 90 days"),
        (("nobody@example.com",), "no user"),
    ]
    for args, message in cases:
        result = run(app, "token", "create", *args, "--name", "x")
        assert_one_error_line(result, message)
    assert _rows(app) == []
    assert create_pat(app, admin.email, "--scope", "admin", "--expires-in", "7")["scopes"] == [
        "admin"
    ]


def test_list_by_user_and_revoke(app: Flask, user: TestUser) -> None:
    other = make_user(app, "bob@example.com", "bob password, long")
    mine = create_pat(app, user.email)
    create_pat(app, other.email)
    assert [row["id"] for row in list_pats(app, "--user", user.email)] == [mine["id"]]
    result = run(app, "token", "revoke", str(mine["id"]))
    assert result.exit_code == 0, result.output
    [row] = list_pats(app, "--user", user.email)
    assert row["revoked_at"] is not None
    assert_one_error_line(run(app, "token", "revoke", "999"), "no personal access token")
