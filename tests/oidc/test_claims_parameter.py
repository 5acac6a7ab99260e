"""The ``claims`` request parameter (OIDC Core §5.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.models.oidc import AuthorizationCode
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.rows import count

ISSUER = "http://idp.test"


def tokens_for(
    http: FlaskClient, client: oidc.Client, **params: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (ID token claims, userinfo) for one authorization."""
    code = oidc.get_code(http, client, **params)
    body = oidc.exchange(http, client, code).get_json()
    id_token = oidc.decode(http, body["id_token"], audience=client.client_id)
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200, info.data
    return id_token, info.get_json()


def test_claims_go_where_they_are_asked_for(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    claims = {"userinfo": {"email": {"essential": True}}, "id_token": {"name": None}}
    id_token, info = tokens_for(http, client, scope="openid", claims=json.dumps(claims))
    assert id_token["name"] == logged_in.name
    assert "email" not in id_token
    assert info["email"] == logged_in.email
    assert "name" not in info
    assert info["sub"] == id_token["sub"]


def test_without_claims_scope_openid_releases_only_the_subject(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    id_token, info = tokens_for(http, client, scope="openid")
    assert "name" not in id_token and "email" not in id_token
    assert set(info) == {"sub"}


def test_unknown_and_unrequestable_claims_are_ignored(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    claims = {
        "userinfo": {"ssn": {"essential": True}, "password_hash": None, "email": None},
        "id_token": {"sub": {"value": "someone-else"}, "iss": None, "nonce": None},
        "extra": {"anything": None},
    }
    id_token, info = tokens_for(http, client, scope="openid", claims=json.dumps(claims))
    assert id_token["iss"] == ISSUER
    assert id_token["sub"] == info["sub"] != "someone-else"
    assert id_token["nonce"] == "nonce-456"
    assert set(info) == {"sub", "email"}
    assert "password_hash" not in json.dumps(info)


@pytest.mark.parametrize(
    "claims",
    [
        "not json",
        "{",
        "[]",
        '"string"',
        "42",
        "null",
        '{"userinfo": 5}',
        '{"id_token": ["name"]}',
        '{"userinfo": {"email": null}, "id_token": "name"}',
        "\u00e9",
    ],
)
def test_malformed_claims_are_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, claims: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, claims=claims)
    assert response.status_code == 302, response.data[:300]
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    query = oidc.query_of(location)
    assert query["error"] == "invalid_request"
    assert query["state"] == "state-123" and query["iss"] == ISSUER
    assert "code" not in query
    assert count(app, AuthorizationCode) == 0


def test_deeply_nested_claims_are_refused_not_crashing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    deep = "[" * 1000 + "]" * 1000
    response = oidc.authorize(http, client, claims=deep)
    assert response.status_code == 302
    assert oidc.query_of(response.headers["Location"])["error"] == "invalid_request"
    assert count(app, AuthorizationCode) == 0


def test_claims_survive_the_login_redirect(app: Flask, http: FlaskClient, user: TestUser) -> None:
    from tests.conftest import AuthActions

    client = oidc.register(app)
    claims = json.dumps({"id_token": {"email": None}})
    response = oidc.authorize(http, client, scope="openid", claims=claims)
    next_url = oidc.query_of(response.headers["Location"])["next"]
    AuthActions(http).login(user.email, user.password, next_url=next_url)
    back = http.get(next_url)
    code = oidc.query_of(back.headers["Location"])["code"]
    body = oidc.exchange(http, client, code).get_json()
    id_token = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert id_token["email"] == user.email


def test_named_claims_stay_within_the_registered_scope(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # Registered for openid only: naming email or groups in `claims` must not release them.
    client = oidc.register(app, is_trusted=False, scope="openid")
    claims = json.dumps({"userinfo": {"email": None, "groups": None}, "id_token": {"email": None}})
    code = oidc.get_code(http, client, scope="openid", claims=claims)
    body = oidc.exchange(http, client, code).get_json()
    id_token = oidc.decode(http, body["id_token"], audience=client.client_id)
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert "email" not in id_token
    assert set(info.get_json()) == {"sub"}


def test_named_claims_are_part_of_what_the_user_consents_to(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    claims = json.dumps({"userinfo": {"email": None}})
    page = oidc.authorize(http, client, scope="openid", claims=claims)
    assert page.status_code == 200
    assert b"Your e-mail address" in page.data
