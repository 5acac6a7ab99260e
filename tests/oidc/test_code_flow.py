"""The authorization code flow end to end, tokens verified with PyJWT against /jwks."""

from __future__ import annotations

import jwt
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import TestUser
from tests.helpers import oidc


def test_code_flow_with_pkce_gives_verifiable_tokens(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    id_token = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert id_token["nonce"] == "nonce-456"
    assert id_token["email"] == logged_in.email
    assert {"sid", "auth_time", "at_hash", "sub", "iat", "exp"} <= set(id_token)
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    access = oidc.decode(http, body["access_token"], audience=client.client_id)
    assert access["sid"] == id_token["sid"] and access["client_id"] == client.client_id
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json()["sub"] == id_token["sub"]
