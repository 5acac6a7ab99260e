"""The admin API: an admin's PAT with the admin scope lists and revokes anyone's PATs."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from idp.users.service import require_user_by_email
from idp.users.service import update_user
from tests.admin.conftest import ADMIN_PASSWORD
from tests.admin.conftest import API
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats


def test_admin_pat_lists_and_revokes_tokens(app: Flask, http: FlaskClient, user: TestUser) -> None:
    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    admin_pat = create_pat(app, admin.email, "--scope", "admin", name="bootstrap")
    alices = create_pat(app, user.email, "--scope", "openid")
    headers = bearer(admin_pat["token"])

    listed = http.get(f"{API}/tokens", query_string={"user": user.email}, headers=headers)
    assert listed.status_code == 200, listed.data
    body = listed.get_json()
    assert body["next"] is None
    [item] = body["items"]
    assert item["id"] == alices["id"] and item["user"] == user.email
    assert item["prefix"] == alices["token"][:16]
    assert alices["token"] not in listed.get_data(as_text=True)
    everyone = http.get(f"{API}/tokens", headers=headers).get_json()["items"]
    assert {row["id"] for row in everyone} == {admin_pat["id"], alices["id"]}

    assert http.delete(f"{API}/tokens/{alices['id']}", headers=headers).status_code == 204
    assert http.get("/userinfo", headers=bearer(alices["token"])).status_code == 401
    [row] = list_pats(app, "--user", user.email)
    assert row["revoked_at"] is not None
    missing = http.delete(f"{API}/tokens/9999", headers=headers)
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_admin_pat_needs_the_admin_scope_and_an_admin(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    without_scope = create_pat(app, admin.email, "--scope", "openid")
    response = http.get(f"{API}/tokens", headers=bearer(without_scope["token"]))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]

    with_scope = create_pat(app, admin.email, "--scope", "admin")
    with app.app_context():
        update_user(require_user_by_email(admin.email), is_admin=False)
    response = http.get(f"{API}/tokens", headers=bearer(with_scope["token"]))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    response = http.delete(
        f"{API}/tokens/{with_scope['id']}", headers=bearer(with_scope["token"][:-1] + "0")
    )
    assert response.status_code == 401
    assert all(row["revoked_at"] is None for row in list_pats(app))
