"""ID tokens (OIDC Core §2, §3.1.3.6, §8), verified with PyJWT against /jwks."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.login import LoginSession
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc


def half_hash(value: str) -> str:
    """Return at_hash for RS256/ES256: the left half of SHA-256, base64url (OIDC Core §3.1.3.6)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def sign_in(http: FlaskClient, client: oidc.Client, **params: str) -> dict[str, Any]:
    verifier, challenge = oidc.pkce_pair()
    params.setdefault("nonce", secrets.token_urlsafe(12))
    code = oidc.get_code(
        http, client, code_challenge=challenge, code_challenge_method="S256", **params
    )
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


def id_token_of(http: FlaskClient, client: oidc.Client, **params: str) -> dict[str, Any]:
    return oidc.decode(http, sign_in(http, client, **params)["id_token"], audience=client.client_id)


def live_logins(app: Flask) -> list[LoginSession]:
    with app.app_context():
        query = select(LoginSession).where(LoginSession.revoked_at.is_(None))
        return list(db.get_session().scalars(query))


def test_id_token_claims(
    app: Flask, http: FlaskClient, user: TestUser, auth: AuthActions, clock: Clock
) -> None:
    login_time = int(clock.now.timestamp())
    assert auth.login(user.email, user.password).status_code == 302
    client = oidc.register(app)
    clock.advance(seconds=5)

    body = sign_in(http, client, nonce="n-0S6_WzA2Mj")

    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in oidc.jwks_client_keys(http)
    claims = oidc.decode(
        http,
        body["id_token"],
        audience=client.client_id,
        leeway=30,  # the test clock runs 5 s ahead of PyJWT's
        options={"require": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid"]},
    )
    assert claims["iss"] == "http://idp.test"
    assert client.client_id in (
        claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    )
    assert claims["azp"] == client.client_id
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["auth_time"] == login_time
    assert claims["iat"] == login_time + 5
    assert claims["exp"] - claims["iat"] == 600
    assert claims["acr"] == "1"
    assert claims["amr"] == ["pwd"]
    assert claims["at_hash"] == half_hash(body["access_token"])
    (login,) = live_logins(app)
    assert claims["sid"] == login.sid
    assert isinstance(claims["sub"], str) and 0 < len(claims["sub"]) <= 255
    assert user.email not in claims["sub"]


def test_nonce_is_absent_when_not_sent(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http, client, nonce=None, code_challenge=challenge, code_challenge_method="S256"
    )
    body = oidc.exchange(http, client, code, code_verifier=verifier).get_json()

    claims = oidc.decode(http, body["id_token"], audience=client.client_id)

    assert "nonce" not in claims


def test_no_id_token_without_openid(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app)

    body = sign_in(http, client, scope="email")

    assert "id_token" not in body
    assert "access_token" in body


def test_id_token_is_not_verifiable_with_a_wrong_audience(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    body = sign_in(http, client)

    with pytest.raises(jwt.InvalidAudienceError):
        oidc.decode(http, body["id_token"], audience="someone-else")


def test_sub_is_stable_across_logins(
    app: Flask, http: FlaskClient, user: TestUser, auth: AuthActions
) -> None:
    client = oidc.register(app)
    auth.login(user.email, user.password)
    first = id_token_of(http, client)
    auth.logout()
    auth.login(user.email, user.password)

    second = id_token_of(http, client)

    assert second["sub"] == first["sub"]
    assert second["sid"] != first["sid"]


def test_sub_differs_between_users(
    app: Flask, http: FlaskClient, user: TestUser, auth: AuthActions
) -> None:
    from tests.conftest import make_user

    bob = make_user(app, "bob@example.com", "bob's long password", name="Bob")
    client = oidc.register(app)
    auth.login(user.email, user.password)
    alice_sub = id_token_of(http, client)["sub"]
    auth.logout()
    auth.login(bob.email, bob.password)

    assert id_token_of(http, client)["sub"] != alice_sub


def test_pairwise_sub(app: Flask, http: FlaskClient, user: TestUser, auth: AuthActions) -> None:
    public = oidc.register(app, "Notes")
    pairwise = oidc.register(
        app,
        "Partner",
        subject_type="pairwise",
        redirect_uris=["https://partner.example.org/callback"],
    )
    other_sector = oidc.register(
        app,
        "Other partner",
        subject_type="pairwise",
        redirect_uris=["https://other.example.net/callback"],
    )
    auth.login(user.email, user.password)
    public_sub = id_token_of(http, public)["sub"]
    body = sign_in(http, pairwise)
    pairwise_sub = oidc.decode(http, body["id_token"], audience=pairwise.client_id)["sub"]
    other_sub = id_token_of(http, other_sector)["sub"]

    assert len({public_sub, pairwise_sub, other_sub}) == 3
    # The same pairwise sub everywhere this client sees the user.
    access = oidc.decode(http, body["access_token"], audience=pairwise.client_id)
    assert access["sub"] == pairwise_sub
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.get_json()["sub"] == pairwise_sub
    # And across logins.
    auth.logout()
    auth.login(user.email, user.password)
    assert id_token_of(http, pairwise)["sub"] == pairwise_sub


def test_pairwise_clients_of_one_sector_share_the_sub(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # OIDC Core §8.1: the sector is the host of the redirect URIs.
    first = oidc.register(
        app,
        "Partner app",
        subject_type="pairwise",
        redirect_uris=["https://partner.example.org/app"],
    )
    second = oidc.register(
        app,
        "Partner admin",
        subject_type="pairwise",
        redirect_uris=["https://partner.example.org/admin"],
    )

    assert id_token_of(http, first)["sub"] == id_token_of(http, second)["sub"]


def test_es256_client(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app, id_token_signed_response_alg="ES256")

    body = sign_in(http, client)

    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "ES256"
    published = {key["kid"]: key for key in http.get("/jwks").get_json()["keys"]}
    assert published[header["kid"]]["kty"] == "EC"
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["at_hash"] == half_hash(body["access_token"])
    (login,) = live_logins(app)
    assert claims["sid"] == login.sid
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(
            body["id_token"],
            key=oidc.jwks_client_keys(http)[header["kid"]],
            algorithms=["RS256"],
            audience=client.client_id,
        )


def test_sid_is_shared_by_every_client_of_one_login(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    notes = oidc.register(app, "Notes")
    wiki = oidc.register(app, "Wiki", token_endpoint_auth_method="none")

    sids = {id_token_of(http, notes)["sid"], id_token_of(http, wiki)["sid"]}

    (login,) = live_logins(app)
    assert sids == {login.sid}


def test_requested_claims_and_scopes_shape_the_id_token(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)

    bare = id_token_of(http, client, scope="openid")
    with_email = id_token_of(http, client, scope="openid email")

    assert "email" not in bare
    assert with_email["email"] == logged_in.email
