"""Where a personal access token works: userinfo, introspection; and when it stops working."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from idp import db
from idp.settings import get_settings
from idp.users.service import disable_user
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.cli import run
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats


def introspect(http: FlaskClient, client: oidc.Client, token: str) -> dict[str, Any]:
    response = http.post("/introspect", data={"token": token}, auth=client.basic_auth)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def pat(app: Flask, user: TestUser) -> dict[str, Any]:
    return create_pat(app, user.email, "--scope", "openid", "--scope", "email", "--expires-in", "7")


def _refused(http: FlaskClient, token: str) -> None:
    response = http.get("/userinfo", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_userinfo_accepts_a_pat_and_records_its_use(
    app: Flask, http: FlaskClient, user: TestUser, pat: dict[str, Any], clock: Clock
) -> None:
    response = http.get(
        "/userinfo", headers=bearer(pat["token"]), environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert response.status_code == 200, response.data
    claims = response.get_json()
    assert claims["email"] == user.email and "sub" in claims
    assert "name" not in claims  # no profile scope on this token
    [row] = list_pats(app)
    assert row["last_used_ip"] == "198.51.100.7"
    assert row["last_used_at"] == clock.now.isoformat()


def test_a_pat_without_openid_gets_insufficient_scope(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    token = create_pat(app, user.email, "--scope", "email")["token"]
    response = http.get("/userinfo", headers=bearer(token))
    assert response.status_code == 403
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]


def test_expiry_is_enforced(http: FlaskClient, pat: dict[str, Any], clock: Clock) -> None:
    clock.advance(days=7, seconds=-1)
    assert http.get("/userinfo", headers=bearer(pat["token"])).status_code == 200
    clock.advance(seconds=1)
    _refused(http, pat["token"])


def test_revoked_and_disabled_stop_at_once(
    app: Flask, http: FlaskClient, user: TestUser, pat: dict[str, Any]
) -> None:
    other = create_pat(app, user.email, "--scope", "openid")
    assert run(app, "token", "revoke", str(pat["id"])).exit_code == 0
    _refused(http, pat["token"])
    assert http.get("/userinfo", headers=bearer(other["token"])).status_code == 200
    with app.app_context():
        disable_user(user.email)
    _refused(http, other["token"])


def test_introspection_by_a_resource_server_only(
    app: Flask, http: FlaskClient, user: TestUser, pat: dict[str, Any], clock: Clock
) -> None:
    api = oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )
    notes = oidc.register(app, "Notes")
    body = introspect(http, api, pat["token"])
    assert body["active"] is True
    assert body["token_type"] == "personal_access_token"
    assert body["scope"] == "openid email"
    assert body["exp"] == int(clock.now.timestamp()) + 7 * 86400
    assert "client_id" not in body
    userinfo = http.get("/userinfo", headers=bearer(pat["token"])).get_json()
    assert body["sub"] == userinfo["sub"]
    assert introspect(http, notes, pat["token"]) == {"active": False}
    # Another last character (a token ends in "x" one time in 62): not the token.
    forged = pat["token"][:-1] + ("y" if pat["token"].endswith("x") else "x")
    assert introspect(http, api, forged) == {"active": False}
    clock.advance(days=8)
    assert introspect(http, api, pat["token"]) == {"active": False}


def test_turned_off_tokens_are_refused(
    app: Flask, http: FlaskClient, user: TestUser, pat: dict[str, Any]
) -> None:
    # The operator turns PATs off (IDP_PAT_ENABLED=false) and restarts: existing ones die too.
    app.extensions["idp.settings"] = dataclasses.replace(get_settings(app), pat_enabled=False)
    _refused(http, pat["token"])
    result = run(app, "token", "create", user.email, "--name", "x")
    assert result.exit_code == 1 and "turned off" in result.stderr


def test_no_token_value_in_any_log_or_audit_row(
    app: Flask, http: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    created = create_pat(app, user.email, "--scope", "openid")
    token = created["token"]
    assert http.get("/userinfo", headers=bearer(token)).status_code == 200
    assert http.get("/userinfo", headers=bearer(token[:-1] + "!")).status_code == 401
    assert run(app, "token", "revoke", str(created["id"])).exit_code == 0
    assert http.get("/userinfo", headers=bearer(token)).status_code == 401
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "pat_created" in logged and "pat_revoked" in logged and token[:16] in logged
    assert token[16:] not in logged
    with app.app_context():
        rows = db.get_session().execute(text("SELECT * FROM audit_event")).all()
    assert rows and not any(token[16:] in str(row) for row in rows)
