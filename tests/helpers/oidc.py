"""OIDC test helpers: register a client, PKCE pairs, drive authorize -> code -> token."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers.forms import csrf_token

REDIRECT_URI = "https://rp.example.com/callback"


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    redirect_uri: str = REDIRECT_URI

    @property
    def basic_auth(self) -> tuple[str, str]:
        assert self.client_secret is not None
        return (self.client_id, self.client_secret)


def register(app: Flask, name: str = "Notes", **options: Any) -> Client:
    """Register a client through the service layer and return its credentials."""
    from idp.oidc.clients import ClientSpec
    from idp.oidc.clients import register_client

    options.setdefault("redirect_uris", [REDIRECT_URI])
    options.setdefault("is_trusted", True)
    with app.app_context():
        client, secret = register_client(ClientSpec(client_name=name, **options))
        return Client(client.client_id, secret, options["redirect_uris"][0])


def pkce_pair() -> tuple[str, str]:
    """Return (code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def authorize(http: FlaskClient, client: Client, **params: str) -> Any:
    """GET /authorize with sensible defaults; returns the raw response."""
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile email",
        "state": "state-123",
        "nonce": "nonce-456",
        **params,
    }
    query = {key: value for key, value in query.items() if value is not None}
    return http.get("/authorize", query_string=query)


def get_code(http: FlaskClient, client: Client, **params: str) -> str:
    """Run /authorize for a logged-in browser (consenting if asked); return the code."""
    response = authorize(http, client, **params)
    if response.status_code == 200 and b'name="decision"' in response.data:
        response = http.post(
            response.request.full_path if hasattr(response, "request") else "/authorize",
            data={"csrf_token": csrf_token(response.data), "decision": "allow"},
        )
    assert response.status_code == 302, response.data[:500]
    query = query_of(response.headers["Location"])
    assert "code" in query, query
    return query["code"]


def exchange(http: FlaskClient, client: Client, code: str, **form: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        **form,
    }
    if client.client_secret is None:
        data.setdefault("client_id", client.client_id)
        return http.post("/token", data=data)
    return http.post("/token", data=data, auth=client.basic_auth)


def jwks_client_keys(http: FlaskClient) -> dict[str, jwt.PyJWK]:
    """Return the published keys by kid, parsed by PyJWT (not the library that signed)."""
    keys = http.get("/jwks").get_json()["keys"]
    return {key["kid"]: jwt.PyJWK(key) for key in keys}


def decode(
    http: FlaskClient, token: str, *, audience: str, issuer: str = "http://idp.test", **options: Any
) -> dict[str, Any]:
    """Verify a JWT with PyJWT against /jwks and return its claims."""
    header = jwt.get_unverified_header(token)
    key = jwks_client_keys(http)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key=key, algorithms=[header["alg"]], audience=audience, issuer=issuer, **options
    )
    return claims


def issue_tokens(
    http: FlaskClient, client: Client, scope: str = "openid profile email", **params: str
) -> dict[str, Any]:
    """Run the code flow (PKCE, fresh nonce) for the logged-in browser; return the tokens."""
    verifier, challenge = pkce_pair()
    params.setdefault("nonce", secrets.token_urlsafe(8))  # nonces are single-use per client
    code = get_code(
        http, client, scope=scope, code_challenge=challenge, code_challenge_method="S256", **params
    )
    response = exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


def token_rows(app: Flask) -> list[tuple[Any, ...]]:
    """Return every stored issuance's state: what a negative test must leave alone."""
    from sqlalchemy import select

    from idp import db
    from idp.models.oidc import OAuthToken

    with app.app_context():
        rows = db.get_session().execute(
            select(OAuthToken.id, OAuthToken.revoked_at, OAuthToken.rotated_at).order_by(
                OAuthToken.id
            )
        )
        return [tuple(row) for row in rows]
