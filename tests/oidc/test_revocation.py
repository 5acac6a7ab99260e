"""Token revocation (RFC 7009): a refresh token takes its whole family with it."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.oidc import OAuthToken
from tests.conftest import TestUser
from tests.helpers import oidc

SCOPE = "openid profile offline_access"


def issue(http: FlaskClient, client: oidc.Client, scope: str = SCOPE) -> dict[str, Any]:
    return oidc.issue_tokens(http, client, scope)


def refresh(http: FlaskClient, client: oidc.Client, refresh_token: str) -> Any:
    return http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=client.basic_auth,
    )


def revoke(http: FlaskClient, client: oidc.Client, token: str, **form: str) -> Any:
    return http.post("/revoke", data={"token": token, **form}, auth=client.basic_auth)


def is_active(http: FlaskClient, api: oidc.Client, token: str) -> bool:
    response = http.post("/introspect", data={"token": token}, auth=api.basic_auth)
    assert response.status_code == 200, response.data
    active: bool = response.get_json()["active"]
    return active


@pytest.fixture
def client(app: Flask) -> oidc.Client:
    return oidc.register(app, "Notes")


@pytest.fixture
def api(app: Flask) -> oidc.Client:
    return oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )


@pytest.fixture
def tokens(http: FlaskClient, logged_in: TestUser, client: oidc.Client) -> dict[str, Any]:
    return issue(http, client)


def test_revoking_an_access_token(
    app: Flask, http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    assert is_active(http, api, tokens["access_token"])
    response = revoke(http, client, tokens["access_token"], token_type_hint="access_token")
    assert response.status_code == 200
    assert response.get_json() == {}
    assert not is_active(http, api, tokens["access_token"])
    userinfo = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    with app.app_context():
        (row,) = db.get_session().scalars(select(OAuthToken))
        assert row.revoked_at is not None


def test_revoking_a_refresh_token_revokes_its_family(
    app: Flask, http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    rotated = refresh(http, client, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.data
    second = rotated.get_json()
    # Another family of the same user and client must survive.
    other = issue(http, client)
    assert is_active(http, api, second["access_token"])

    response = revoke(http, client, second["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200

    for token in (tokens["access_token"], second["access_token"], second["refresh_token"]):
        assert not is_active(http, api, token)
    failed = refresh(http, client, second["refresh_token"])
    assert failed.status_code == 400
    assert failed.get_json()["error"] == "invalid_grant"
    assert is_active(http, api, other["access_token"])
    assert is_active(http, api, other["refresh_token"])
    with app.app_context():
        rows = list(db.get_session().scalars(select(OAuthToken).order_by(OAuthToken.id)))
    family = [row for row in rows if row.family_id == rows[0].family_id]
    assert len(family) == 2
    assert all(row.revoked_at is not None for row in family)
    assert all(row.revoked_at is None for row in rows if row not in family)


def test_a_wrong_hint_still_revokes(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    # RFC 7009 §2.1: an unhelpful hint makes the server search the other token types.
    response = revoke(http, client, tokens["refresh_token"], token_type_hint="access_token")
    assert response.status_code == 200
    assert not is_active(http, api, tokens["refresh_token"])


def test_a_public_client_revokes_its_own_token(
    app: Flask, http: FlaskClient, logged_in: TestUser, api: oidc.Client
) -> None:
    public = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    tokens = issue(http, public)
    response = http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": public.client_id}
    )
    assert response.status_code == 200
    assert not is_active(http, api, tokens["refresh_token"])


def test_another_clients_token_is_left_alone(
    app: Flask, http: FlaskClient, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = revoke(http, api, token)
        # RFC 7009 §2.2: 200 whatever happened, so the answer reveals nothing.
        assert response.status_code == 200
    assert oidc.token_rows(app) == before
    assert is_active(http, api, tokens["access_token"])
    assert is_active(http, api, tokens["refresh_token"])


@pytest.mark.parametrize(
    "token",
    ["", "x", "a.b.c", "é", "A" * 10000, secrets.token_urlsafe(32)],
    ids=["empty", "short", "dots", "non-ascii", "long", "unknown"],
)
def test_unknown_tokens_answer_200(
    app: Flask, http: FlaskClient, client: oidc.Client, tokens: dict[str, Any], token: str
) -> None:
    before = oidc.token_rows(app)
    response = revoke(http, client, token)
    assert response.status_code == 200
    assert oidc.token_rows(app) == before


def test_unsupported_token_type_hint(
    app: Flask, http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    response = revoke(http, client, tokens["refresh_token"], token_type_hint="id_token")
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_token_type"
    assert oidc.token_rows(app) == before
    assert is_active(http, api, tokens["refresh_token"])


def test_missing_token_is_invalid_request(
    app: Flask, http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    response = http.post("/revoke", data={}, auth=client.basic_auth)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert oidc.token_rows(app) == before


def test_revocation_needs_client_authentication(
    app: Flask, http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    for credentials in (None, (client.client_id, "wrong-secret-" + "x" * 24)):
        response = http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=credentials)
        assert response.status_code == 401, response.data
        assert response.get_json()["error"] == "invalid_client"
    # A confidential client cannot pass itself off as public by sending only its client_id.
    response = http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": client.client_id}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert oidc.token_rows(app) == before
    assert is_active(http, api, tokens["refresh_token"])
