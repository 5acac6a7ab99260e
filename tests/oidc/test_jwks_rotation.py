"""Signing-key rollover: a new key is published a full JWKS cache lifetime before it signs."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.keys.store import get_key_store
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc

MAX_AGE = 120
# The test clock runs ahead of the real one; PyJWT compares iat/exp with the real one.
LEEWAY = 3600


@pytest.fixture
def short_cache(settings: dict[str, Any]) -> None:
    settings["jwks_max_age"] = MAX_AGE


@pytest.fixture
def clients(app: Flask) -> dict[str, oidc.Client]:
    """One client per ID token algorithm; access tokens are always RS256."""
    return {
        "RS256": oidc.register(app, "RS"),
        "ES256": oidc.register(
            app,
            "ES",
            id_token_signed_response_alg="ES256",
            redirect_uris=["https://es.example.com/cb"],
        ),
    }


def issue(http: FlaskClient, clients: dict[str, oidc.Client]) -> list[tuple[str, str]]:
    """Return (token, audience) for an access token and an ID token of each algorithm."""
    issued = []
    for client in clients.values():
        verifier, challenge = oidc.pkce_pair()
        code = oidc.get_code(
            http,
            client,
            nonce=secrets.token_urlsafe(8),
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        response = oidc.exchange(http, client, code, code_verifier=verifier)
        assert response.status_code == 200, response.data
        body = response.get_json()
        issued += [(body["access_token"], client.client_id), (body["id_token"], client.client_id)]
    return issued


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def verify(token: str, audience: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify ``token`` with PyJWT against a JWK Set the relying party holds."""
    header = jwt.get_unverified_header(token)
    keys = {key["kid"]: jwt.PyJWK(key) for key in jwks["keys"]}
    assert header["kid"] in keys, "the token's key is not in this JWK Set"
    claims: dict[str, Any] = jwt.decode(
        token,
        key=keys[header["kid"]],
        algorithms=[header["alg"]],
        audience=audience,
        issuer="http://idp.test",
        leeway=LEEWAY,
    )
    return claims


def fetch_jwks(http: FlaskClient) -> dict[str, Any]:
    response = http.get("/jwks")
    assert response.status_code == 200
    jwks: dict[str, Any] = response.get_json()
    return jwks


def kids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


@pytest.mark.usefixtures("short_cache")
def test_rotation_waits_one_cache_lifetime_before_signing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clients: dict[str, oidc.Client],
    clock: Clock,
) -> None:
    max_age = http.get("/jwks").headers["Cache-Control"]
    assert f"max-age={MAX_AGE}" in max_age
    cached = fetch_jwks(http)  # what a relying party holds for up to MAX_AGE seconds
    cached_etag = http.get("/jwks").headers["ETag"]
    before = issue(http, clients)
    old_kids = {kid_of(token) for token, _ in before}
    assert len(old_kids) == 2  # one RS256, one ES256

    with app.app_context():
        created = get_key_store().rotate(clock.now)
    new_kids = {info.kid for info in created if info.kind in ("RS256", "ES256")}
    assert len(new_kids) == 2 and not new_kids & old_kids

    # Published at once, so relying parties can pick them up (a new ETag: no 304 for the old)...
    etag = http.get("/jwks").headers["ETag"]
    assert http.get("/jwks", headers={"If-None-Match": cached_etag}).status_code == 200
    assert etag != cached_etag
    published = fetch_jwks(http)
    assert new_kids | old_kids <= kids(published)
    # ...but the old keys keep signing for a whole cache lifetime.
    during = issue(http, clients)
    clock.advance(seconds=MAX_AGE - 1)
    during += issue(http, clients)
    assert {kid_of(token) for token, _ in during} == old_kids
    # A relying party that cached the JWK Set before the rotation verifies all of them.
    for token, audience in before + during:
        verify(token, audience, cached)

    clock.advance(seconds=1)
    after = issue(http, clients)
    assert {kid_of(token) for token, _ in after} == new_kids
    current = fetch_jwks(http)
    for token, audience in after:
        verify(token, audience, current)
        assert kid_of(token) not in kids(cached)
    # Tokens signed before the rotation still verify against today's JWK Set.
    for token, audience in before + during:
        verify(token, audience, current)


def test_rotate_now_signs_at_once(
    app: Flask, http: FlaskClient, logged_in: TestUser, clients: dict[str, oidc.Client]
) -> None:
    before = issue(http, clients)
    old_kids = {kid_of(token) for token, _ in before}
    result = app.test_cli_runner().invoke(args=["key", "rotate", "--now", "--json"])
    assert result.exit_code == 0, result.output
    after = issue(http, clients)
    new_kids = {kid_of(token) for token, _ in after}
    assert len(new_kids) == 2 and not new_kids & old_kids
    for kid in new_kids:
        assert kid in result.output
    current = fetch_jwks(http)
    assert old_kids | new_kids <= kids(current)
    for token, audience in before + after:
        verify(token, audience, current)


def test_userinfo_accepts_access_tokens_of_the_old_key(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clients: dict[str, oidc.Client],
    clock: Clock,
) -> None:
    (access, _), *_ = issue(http, clients)
    with app.app_context():
        get_key_store().rotate(clock.now, immediate=True)
    (fresh, _), *_ = issue(http, clients)
    assert kid_of(fresh) != kid_of(access)
    for token in (access, fresh):
        response = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.data
