"""The UserInfo endpoint (OIDC Core §5.3) with Bearer tokens (RFC 6750 §2, §3)."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.keys.store import get_key_store
from idp.models.oidc import OAuthToken
from idp.models.user import Group
from idp.models.user import User
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_rows(app: Flask) -> list[tuple[int, Any]]:
    """Return (id, revoked_at) of every stored issuance: what a negative test must not change."""
    with app.app_context():
        rows = db.get_session().execute(
            select(OAuthToken.id, OAuthToken.revoked_at).order_by(OAuthToken.id)
        )
        return [tuple(row) for row in rows]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
        signature,
    )


def assert_bearer_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.data
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'error="{error}"' in challenge
    assert response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def client(app: Flask) -> oidc.Client:
    return oidc.register(app)


@pytest.fixture
def tokens(http: FlaskClient, logged_in: TestUser, client: oidc.Client) -> dict[str, Any]:
    return oidc.issue_tokens(http, client, "openid profile email groups")


def test_get_with_bearer_header(
    http: FlaskClient, client: oidc.Client, tokens: dict[str, Any], logged_in: TestUser
) -> None:
    response = http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    claims = response.get_json()
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert claims["sub"] == id_token["sub"]
    assert claims["email"] == logged_in.email


def test_post_with_bearer_header(
    http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]
) -> None:
    response = http.post("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.data
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert response.get_json()["sub"] == id_token["sub"]


def test_post_with_form_body_token(
    http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]
) -> None:
    # RFC 6750 §2.2: the form-encoded body parameter access_token.
    response = http.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200, response.data
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert response.get_json()["sub"] == id_token["sub"]


def test_token_in_header_and_body_is_invalid_request(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    before = token_rows(app)
    # RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token".
    response = http.post(
        "/userinfo",
        headers=bearer(tokens["access_token"]),
        data={"access_token": tokens["access_token"]},
    )
    assert_bearer_error(response, 400, "invalid_request")
    assert token_rows(app) == before
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic YWxpY2U6c2VjcmV0"}, {"Authorization": "Bearer "}],
    ids=["none", "basic", "empty-bearer"],
)
def test_no_token_is_401_with_bare_challenge(
    app: Flask, http: FlaskClient, tokens: dict[str, Any], headers: dict[str, str]
) -> None:
    before = token_rows(app)
    response = http.get("/userinfo", headers=headers)
    assert response.status_code == 401
    # RFC 6750 §3.1: no authentication at all gets a challenge without an error code.
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.split()[0] == "Bearer"
    assert "error=" not in challenge
    assert token_rows(app) == before


def test_expired_token_is_invalid_token(
    app: Flask, http: FlaskClient, tokens: dict[str, Any], clock: Clock
) -> None:
    clock.advance(seconds=tokens["expires_in"])
    before = token_rows(app)
    response = http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert_bearer_error(response, 401, "invalid_token")
    assert token_rows(app) == before


def test_tampered_token_is_invalid_token(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    header, payload, signature = tokens["access_token"].split(".")
    claims = parts(tokens["access_token"])[1]
    forged = f"{header}.{b64({**claims, 'scope': 'openid profile email groups admin'})}.{signature}"
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    before = token_rows(app)
    for bad in (forged, f"{header}.{payload}.{flipped}", f"{header}.{payload}."):
        response = http.get("/userinfo", headers=bearer(bad))
        assert_bearer_error(response, 401, "invalid_token")
    assert token_rows(app) == before


def test_alg_none_token_is_invalid_token(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    header, claims, _ = parts(tokens["access_token"])
    unsigned = f"{b64({**header, 'alg': 'none'})}.{b64(claims)}."
    before = token_rows(app)
    response = http.get("/userinfo", headers=bearer(unsigned))
    assert_bearer_error(response, 401, "invalid_token")
    assert token_rows(app) == before


def test_token_of_another_issuer_is_invalid_token(
    app: Flask, http: FlaskClient, tokens: dict[str, Any], clock: Clock
) -> None:
    header, claims, _ = parts(tokens["access_token"])
    with app.app_context():
        ours = get_key_store().signing_key("RS256", clock.now)
    our_key = jwt.PyJWK(ours.private_jwk).key
    # Our own key and a live jti, but another issuer: a confused-deputy token.
    other_iss = jwt.encode(
        {**claims, "iss": "https://evil.example"}, our_key, algorithm="RS256", headers=header
    )
    # A well-formed token from a stranger's key that claims our issuer.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign_key = jwt.encode(
        claims, stranger, algorithm="RS256", headers={**header, "kid": secrets.token_hex(8)}
    )
    same_kid = jwt.encode(claims, stranger, algorithm="RS256", headers=header)
    before = token_rows(app)
    for bad in (other_iss, foreign_key, same_kid):
        response = http.get("/userinfo", headers=bearer(bad))
        assert_bearer_error(response, 401, "invalid_token")
    assert token_rows(app) == before
    # The genuine token was not harmed by the attempts.
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200


def test_garbage_tokens_are_invalid_token(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    for bad in ("x", "a.b.c", "é.é.é", "." * 2, "A" * 10000, "eyJ.eyJ.", secrets.token_urlsafe(32)):
        response = http.post("/userinfo", data={"access_token": bad})
        assert_bearer_error(response, 401, "invalid_token")


def test_token_without_openid_scope_is_insufficient_scope(
    app: Flask, http: FlaskClient, logged_in: TestUser, client: oidc.Client
) -> None:
    tokens = oidc.issue_tokens(http, client, "profile email")
    assert "openid" not in tokens["scope"].split()
    before = token_rows(app)
    response = http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert_bearer_error(response, 403, "insufficient_scope")
    assert token_rows(app) == before


def test_client_credentials_token_is_not_a_user_token(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Robot")
    token = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "openid"},
        auth=client.basic_auth,
    )
    assert token.status_code == 200, token.data
    response = http.get("/userinfo", headers=bearer(token.get_json()["access_token"]))
    assert response.status_code in (401, 403)
    assert "sub" not in response.get_json()


def add_to_group(app: Flask, email: str, *names: str) -> None:
    with app.app_context():
        session = db.get_session()
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        for name in names:
            user.groups.append(Group(name=name))
        session.commit()


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", {"sub"}),
        (
            "openid profile",
            {"sub", "name", "given_name", "family_name", "preferred_username", "updated_at"},
        ),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid groups", {"sub", "groups"}),
        (
            "openid profile email groups",
            {
                "sub",
                "name",
                "given_name",
                "family_name",
                "preferred_username",
                "updated_at",
                "email",
                "email_verified",
                "groups",
            },
        ),
    ],
)
def test_claims_follow_the_scopes(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    client: oidc.Client,
    scope: str,
    expected: set[str],
) -> None:
    add_to_group(app, logged_in.email, "staff", "admins")
    tokens = oidc.issue_tokens(http, client, scope)
    response = http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200, response.data
    claims = response.get_json()
    assert set(claims) == expected
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert claims["sub"] == id_token["sub"]
    with app.app_context():
        user = db.get_session().scalar(select(User).where(User.email == logged_in.email))
        assert user is not None
        values = {
            "name": user.name,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "preferred_username": user.email,
            "updated_at": int(user.updated_at.timestamp()),
            "email": user.email,
            "email_verified": True,
            "groups": ["admins", "staff"],
        }
    for name in expected - {"sub"}:
        assert claims[name] == values[name], name
    assert isinstance(claims.get("updated_at", 0), int)


def test_sub_is_pairwise_for_a_pairwise_client(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    public = oidc.register(app, "Public")
    pairwise = oidc.register(
        app, "Pairwise", subject_type="pairwise", redirect_uris=["https://other.example/cb"]
    )
    subs = []
    for client in (public, pairwise):
        tokens = oidc.issue_tokens(http, client, "openid")
        response = http.get("/userinfo", headers=bearer(tokens["access_token"]))
        id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
        assert response.get_json()["sub"] == id_token["sub"]
        subs.append(id_token["sub"])
    assert subs[0] != subs[1]
