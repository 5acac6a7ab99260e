"""/account/tokens: create (the secret shown once), list, rename, revoke; the password form."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers.forms import csrf_token
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats

PAGE = "/account/tokens"
TOKEN = re.compile(r"idp_pat_[0-9A-Za-z]{49}")


def post(http: FlaskClient, path: str = PAGE, **form: Any) -> Any:
    token = csrf_token(http.get(path).data)
    return http.post(path, data={"csrf_token": token, **form})


def test_create_shows_the_secret_once_and_it_works(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    page = http.get(PAGE)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert 'value="admin"' not in page.get_data(as_text=True)  # not an admin
    assert 'value="never"' not in page.get_data(as_text=True)  # not allowed by default

    response = post(
        http, action="create", name="deploy bot", scope=["openid", "email"], expires="30"
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    [secret] = TOKEN.findall(response.get_data(as_text=True))
    [row] = list_pats(app)
    assert row["name"] == "deploy bot" and row["scopes"] == ["openid", "email"]
    assert row["expires_at"] == (clock.now + timedelta(days=30)).isoformat()
    assert http.get("/userinfo", headers=bearer(secret)).get_json()["email"] == logged_in.email
    # Shown once: the listing names its prefix only.
    listing = http.get(PAGE).get_data(as_text=True)
    assert secret not in listing and row["prefix"] in listing


def test_create_with_a_date_within_the_maximum(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    too_late = (clock.now + timedelta(days=92)).date().isoformat()
    response = post(
        http, action="create", name="x", scope="openid", expires="date", expires_on=too_late
    )
    assert response.status_code == 400
    assert "at most 90 days" in response.get_data(as_text=True)
    refused = [
        {"expires": "never"},
        {"expires": "365"},
        {"expires": "date", "expires_on": "soon"},
        {"expires": "30", "scope": "admin"},
        {"expires": "30", "scope": []},
    ]
    for form in refused:
        response = post(http, action="create", name="x", **{"scope": "openid", **form})
        assert response.status_code == 400, form
        assert not TOKEN.search(response.get_data(as_text=True))
    assert list_pats(app) == []
    in_time = (clock.now + timedelta(days=10)).date().isoformat()
    response = post(
        http, action="create", name="x", scope="openid", expires="date", expires_on=in_time
    )
    assert response.status_code == 200
    assert list_pats(app)[0]["expires_at"].startswith(in_time)


def test_rename_and_revoke_only_ones_own(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    mine = create_pat(app, logged_in.email)
    from tests.conftest import make_user

    bob = make_user(app, "bob@example.com", "bob password, long")
    theirs = create_pat(app, bob.email)
    response = post(http, action="rename", id=str(mine["id"]), name="renamed")
    assert response.status_code == 303
    assert "renamed" in http.get(PAGE).get_data(as_text=True)
    assert post(http, action="revoke", id=str(theirs["id"])).status_code == 404
    assert post(http, action="rename", id=str(theirs["id"]), name="mine now").status_code == 404
    assert post(http, action="revoke", id=str(mine["id"])).status_code == 303
    rows = {row["id"]: row for row in list_pats(app)}
    assert rows[mine["id"]]["revoked_at"] is not None and rows[mine["id"]]["name"] == "renamed"
    assert rows[theirs["id"]]["revoked_at"] is None and rows[theirs["id"]]["name"] == "CI script"
    assert http.get("/userinfo", headers=bearer(mine["token"])).status_code == 401


def test_a_form_without_csrf_changes_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    mine = create_pat(app, logged_in.email)
    response = http.post(PAGE, data={"action": "revoke", "id": str(mine["id"])})
    assert response.status_code == 400
    assert list_pats(app)[0]["revoked_at"] is None


def _change_password(http: FlaskClient, user: TestUser, **extra: str) -> Any:
    return post(
        http,
        "/account/security",
        current_password=user.password,
        new_password="a brand new password",
        confirm_password="a brand new password",
        **extra,
    )


def test_password_change_keeps_tokens_unless_asked(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    kept = create_pat(app, logged_in.email, "--scope", "openid")
    assert _change_password(http, logged_in).status_code == 303
    assert http.get("/userinfo", headers=bearer(kept["token"])).status_code == 200
    logged_in.password = "a brand new password"
    response = _change_password(http, logged_in, revoke_tokens="yes")
    assert response.status_code == 303
    assert http.get("/userinfo", headers=bearer(kept["token"])).status_code == 401
    assert list_pats(app)[0]["revoked_at"] is not None
