"""The client credentials grant: machine tokens for confidential clients (RFC 6749 §4.4)."""

from __future__ import annotations

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.admin.conftest import service_account
from tests.helpers import oidc
from tests.oidc.test_token import assert_token_error
from tests.oidc.test_token import introspect
from tests.oidc.test_token import state_of

CC = {"grant_type": "client_credentials"}


def test_machine_token(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Machine")

    response = http.post("/token", data=CC, auth=client.basic_auth)

    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    claims = oidc.decode(http, body["access_token"], audience=client.client_id)
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["exp"] - claims["iat"] == 600
    assert not {"sid", "auth_time", "scope", "amr", "acr"} & set(claims)
    assert state_of(app) == (1, 0, 0)


def test_machine_token_with_client_secret_post(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Machine", token_endpoint_auth_method="client_secret_post")

    response = http.post(
        "/token",
        data={**CC, "client_id": client.client_id, "client_secret": client.client_secret or ""},
    )

    assert response.status_code == 200, response.data


def test_machine_token_is_active_at_introspection(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Machine")
    access_token = http.post("/token", data=CC, auth=client.basic_auth).get_json()["access_token"]

    payload = introspect(http, client, access_token)

    assert payload["active"] is True
    assert payload["client_id"] == payload["sub"] == client.client_id
    assert "sid" not in payload


def test_machine_token_gets_no_userinfo(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Machine")
    access_token = http.post(
        "/token", data={**CC, "scope": "openid"}, auth=client.basic_auth
    ).get_json()["access_token"]

    response = http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_requested_scope_is_granted(app: Flask, http: FlaskClient) -> None:
    # The admin scope without a user only for a service account (tests/admin/test_auth.py).
    client = service_account(app, "Machine", "reports", "admin")

    body = http.post("/token", data={**CC, "scope": "admin"}, auth=client.basic_auth).get_json()

    assert body["scope"] == "admin"
    assert oidc.decode(http, body["access_token"], audience=client.client_id)["scope"] == "admin"


@pytest.mark.parametrize("scope", ["offline_access", "openid offline_access"])
def test_no_refresh_token_and_no_id_token(app: Flask, http: FlaskClient, scope: str) -> None:
    client = oidc.register(app, "Machine")

    body = http.post("/token", data={**CC, "scope": scope}, auth=client.basic_auth).get_json()

    assert "refresh_token" not in body
    assert "id_token" not in body
    assert state_of(app) == (1, 0, 0)


@pytest.mark.parametrize("scope", ["admin", "openid admin", "unknown"])
def test_unregistered_scope_is_invalid_scope(app: Flask, http: FlaskClient, scope: str) -> None:
    # The default registration has no ``admin``: a client may not grant itself the admin API.
    client = oidc.register(app, "Machine")
    before = state_of(app)

    response = http.post("/token", data={**CC, "scope": scope}, auth=client.basic_auth)

    assert_token_error(response, "invalid_scope")
    assert state_of(app) == before


def test_public_client_is_refused(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    before = state_of(app)

    response = http.post("/token", data={**CC, "client_id": client.client_id})

    assert response.get_json()["error"] in {"invalid_client", "unauthorized_client"}
    assert_token_error(response, response.get_json()["error"], response.status_code)
    assert response.status_code in (400, 401)
    assert state_of(app) == before


def test_client_without_the_grant_is_unauthorized(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Notes", grant_types=["authorization_code", "refresh_token"])
    before = state_of(app)

    response = http.post("/token", data=CC, auth=client.basic_auth)

    assert_token_error(response, "unauthorized_client")
    assert state_of(app) == before


def test_wrong_secret_is_invalid_client(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Machine")
    before = state_of(app)

    response = http.post("/token", data=CC, auth=(client.client_id, "wrong" * 8))

    assert_token_error(response, "invalid_client", 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert state_of(app) == before
