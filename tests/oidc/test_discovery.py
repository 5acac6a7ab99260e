"""OpenID Provider metadata (OIDC Discovery 1.0 §3, RFC 8414) and the JWK Set it points to."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from authlib.oauth2 import rfc8414
from authlib.oauth2 import rfc9207
from authlib.oidc import rpinitiated
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask
from flask.testing import FlaskClient

ISSUER = "https://login.example.com"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
def https_issuer(settings: dict[str, Any]) -> None:
    settings["issuer"] = ISSUER


def metadata_of(http: FlaskClient) -> dict[str, Any]:
    response = http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "max-age" in response.headers["Cache-Control"]
    body: dict[str, Any] = response.get_json()
    return body


def validate(metadata: dict[str, Any]) -> None:
    """Validate with Authlib's models of OIDC Discovery, RFC 8414, RFC 9207 and RP logout."""
    OpenIDProviderMetadata(metadata).validate(
        metadata_classes=[
            rfc8414.AuthorizationServerMetadata,
            rfc9207.AuthorizationServerMetadata,
            rpinitiated.OpenIDProviderMetadata,
        ]
    )


def endpoint_urls(metadata: dict[str, Any]) -> dict[str, str]:
    return {
        name: value
        for name, value in metadata.items()
        if name.endswith("_endpoint") or name == "jwks_uri"
    }


@pytest.mark.usefixtures("https_issuer")
def test_metadata_is_valid_and_derives_from_the_issuer(app: Flask, http: FlaskClient) -> None:
    metadata = metadata_of(http)
    validate(metadata)
    assert metadata["issuer"] == ISSUER
    urls = endpoint_urls(metadata)
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert name in urls, name
    for name, url in urls.items():
        assert url.startswith(ISSUER + "/"), name


def test_issuer_is_exactly_the_setting(http: FlaskClient) -> None:
    metadata = metadata_of(http)
    assert metadata["issuer"] == "http://idp.test"
    assert metadata["token_endpoint"] == "http://idp.test/token"


def test_algorithms_and_methods(http: FlaskClient) -> None:
    metadata = metadata_of(http)
    algs = metadata["id_token_signing_alg_values_supported"]
    assert {"RS256", "ES256"} <= set(algs)
    for name, values in metadata.items():
        if (
            name.endswith("_alg_values_supported")
            and name != "userinfo_signing_alg_values_supported"
        ):
            assert "none" not in values, name
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert "openid" in metadata["scopes_supported"]
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]
    assert {"sub", "sid", "email", "groups"} <= set(metadata["claims_supported"])


@pytest.mark.parametrize("https", [False, True], ids=["http-issuer", "https-issuer"])
def test_every_named_endpoint_answers(
    settings: dict[str, Any], https: bool, request: pytest.FixtureRequest
) -> None:
    if https:
        settings["issuer"] = ISSUER
    settings["registration_token"] = "initial-access-token-" + "x" * 24
    app: Flask = request.getfixturevalue("app")
    http = app.test_client()
    metadata = metadata_of(http)
    urls = endpoint_urls(metadata)
    assert "registration_endpoint" in urls
    for name, url in urls.items():
        path = url.removeprefix(metadata["issuer"])
        response = http.get(path)
        if response.status_code == 405:
            response = http.post(path)
        assert response.status_code not in (404, 405), (name, response.status_code)
        assert response.status_code < 500, (name, response.status_code)


def test_registration_is_not_named_while_it_is_off(http: FlaskClient) -> None:
    metadata = metadata_of(http)
    assert "registration_endpoint" not in metadata
    assert http.post("/register", json={"redirect_uris": ["https://x.example/cb"]}).status_code in (
        401,
        403,
    )


# -- /jwks ----------------------------------------------------------------------------------


def test_jwks_publishes_only_public_keys(http: FlaskClient) -> None:
    response = http.get("/jwks")
    assert response.status_code == 200
    keys = response.get_json()["keys"]
    assert {key["alg"] for key in keys} >= {"RS256", "ES256"}
    assert len({key["kid"] for key in keys}) == len(keys)
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key["kid"]
        assert key["kid"] and key["use"] == "sig" and key["alg"] in ("RS256", "ES256")
        assert key["kty"] == ("RSA" if key["alg"] == "RS256" else "EC")
        parsed = jwt.PyJWK(key)
        assert parsed.key_id == key["kid"]
        assert not hasattr(parsed.key, "private_numbers")


@pytest.mark.parametrize("max_age", [None, 120])
def test_jwks_cache_lifetime_is_the_setting(
    settings: dict[str, Any], max_age: int | None, request: pytest.FixtureRequest
) -> None:
    if max_age is not None:
        settings["jwks_max_age"] = max_age
    app: Flask = request.getfixturevalue("app")
    expected = int(app.extensions["idp.settings"].jwks_max_age.total_seconds())
    assert expected == (max_age or 600)
    cache_control = app.test_client().get("/jwks").headers["Cache-Control"]
    directives = {part.strip() for part in cache_control.split(",")}
    assert f"max-age={expected}" in directives


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks"])
def test_documents_carry_an_etag_and_answer_304_to_it(http: FlaskClient, path: str) -> None:
    first = http.get(path)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"')
    again = http.get(path)
    assert again.data == first.data and again.headers["ETag"] == etag
    unchanged = http.get(path, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == etag and "max-age" in unchanged.headers["Cache-Control"]
    other = http.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.data == first.data
