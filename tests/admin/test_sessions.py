"""Sessions through the admin API: the CLI's fields, paging, and revocation that reaches tokens."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from tests.admin.conftest import API
from tests.admin.conftest import Bearer
from tests.admin.conftest import user_token
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers.cli import run

SESSIONS = f"{API}/sessions"


def test_sessions_have_the_fields_of_the_cli(
    app: Flask, http: FlaskClient, user: TestUser, robot_token: Bearer
) -> None:
    user_token(app, user, scope="openid")
    response = http.get(SESSIONS, query_string={"user": user.email}, headers=robot_token.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["next"] is None
    cli = json.loads(run(app, "session", "list", "--user", user.email, "--json").stdout)
    assert [set(item) for item in body["items"]] == [set(item) for item in cli]
    (session,) = body["items"]
    assert session["id"] == cli[0]["id"] and session["user"] == user.email
    assert [item["protocol"] for item in session["participants"]] == ["oidc"]


def test_sessions_are_paged_newest_first(
    app: Flask, http: FlaskClient, robot_token: Bearer
) -> None:
    people = [make_user(app, f"user{n}@example.com", "password number one") for n in range(5)]
    for person in people:
        user_token(app, person, scope="openid")
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = http.get(SESSIONS, query_string=query, headers=robot_token.headers).get_json()
        assert len(body["items"]) <= 2
        seen += [item["user"] for item in body["items"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [person.email for person in reversed(people)]


def test_bad_parameters_name_the_field(http: FlaskClient, robot_token: Bearer) -> None:
    for query, field in (({"limit": 0}, "limit"), ({"cursor": "bogus"}, "cursor")):
        response = http.get(SESSIONS, query_string=query, headers=robot_token.headers)
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
        assert [error["field"] for error in response.get_json()["errors"]] == [field]
    response = http.delete(SESSIONS, headers=robot_token.headers)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "user"
    for unknown in (f"{SESSIONS}/nope", f"{SESSIONS}?user=nobody@example.com"):
        response = http.delete(unknown, headers=robot_token.headers)
        assert response.status_code == 404 and response.mimetype == "application/problem+json"
    response = http.get(
        SESSIONS, query_string={"user": "nobody@example.com"}, headers=robot_token.headers
    )
    assert response.status_code == 404


def test_revoking_a_session_ends_its_tokens(
    app: Flask, http: FlaskClient, user: TestUser, robot_token: Bearer
) -> None:
    """DELETE /sessions/{sid}: the refresh token fails at /token, the access token is inactive."""
    browser = app.test_client()
    from tests.conftest import AuthActions

    AuthActions(browser).login(user.email, user.password)
    notes = oidc.register(app, "Notes")
    tokens = oidc.issue_tokens(browser, notes, scope="openid offline_access")
    resource_server = oidc.register(app, "API", is_resource_server=True)

    def introspect() -> dict:
        response = http.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=resource_server.basic_auth
        )
        return response.get_json()

    assert introspect()["active"] is True
    (session,) = http.get(SESSIONS, headers=robot_token.headers).get_json()["items"]
    response = http.delete(f"{SESSIONS}/{session['id']}", headers=robot_token.headers)
    assert response.status_code == 204
    assert introspect() == {"active": False}
    refresh = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=notes.basic_auth,
    )
    assert refresh.status_code == 400 and refresh.get_json()["error"] == "invalid_grant"
    assert http.get(SESSIONS, headers=robot_token.headers).get_json()["items"] == []
    # Again: already ended, nothing changes.
    assert (
        http.delete(f"{SESSIONS}/{session['id']}", headers=robot_token.headers).status_code == 204
    )


def test_revoking_every_session_of_a_user(
    app: Flask, http: FlaskClient, user: TestUser, robot_token: Bearer
) -> None:
    user_token(app, user, scope="openid")
    user_token(app, user, scope="openid")
    response = http.delete(SESSIONS, query_string={"user": user.email}, headers=robot_token.headers)
    assert response.status_code == 200 and response.get_json() == {"ended": 2}
    assert http.get(SESSIONS, headers=robot_token.headers).get_json()["items"] == []
