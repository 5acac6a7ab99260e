"""Dynamic client registration (RFC 7591 §3): off by default, token-guarded, validated, usable."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from idp import create_app
from idp import db
from idp.models.audit import AuditEvent
from idp.models.oidc import OAuthClient
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import reset_schema
from tests.helpers import oidc

TOKEN = "initial-access-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
METADATA = {"client_name": "Photos", "redirect_uris": ["https://photos.example.com/cb"]}


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings["registration_token"] = TOKEN
    return settings


def state(app: Flask) -> tuple[int, int]:
    """Return (clients, audit rows): what a refused registration must leave untouched."""
    with app.app_context():
        session = db.get_session()
        clients = session.scalar(select(func.count()).select_from(OAuthClient)) or 0
        audits = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
        return clients, audits


def stored(app: Flask, client_id: str) -> OAuthClient:
    with app.app_context():
        client = db.get_session().scalar(
            select(OAuthClient).where(OAuthClient.client_id == client_id)
        )
        assert client is not None
        db.get_session().expunge(client)
        return client


def register(http: FlaskClient, metadata: Any = None, **kwargs: Any) -> Any:
    kwargs.setdefault("headers", BEARER)
    return http.post("/register", json=METADATA if metadata is None else metadata, **kwargs)


def public_jwks() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": "rp-1", "use": "sig", "alg": "RS256"}]}


def test_registration_is_off_unless_a_token_is_configured(
    settings: dict[str, Any], clock: Clock
) -> None:
    app = create_app({**settings, "registration_token": None})
    app.extensions["idp.clock"] = clock
    reset_schema(app)
    try:
        http = app.test_client()
        for headers in ({}, BEARER, {"Authorization": "Bearer "}):
            response = http.post("/register", json=METADATA, headers=headers)
            assert response.status_code == 403
            assert response.get_json()["error"] == "access_denied"
            assert response.headers["Cache-Control"] == "no-store"
        assert state(app) == (0, 0)
    finally:
        db.get_database(app).engine.dispose()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}é",
        TOKEN,
    ],
)
def test_a_missing_or_wrong_initial_access_token_is_invalid_token(
    app: Flask, http: FlaskClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = register(http, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert state(app) == (0, 0)


def test_a_confidential_client_is_registered_with_every_value_echoed(
    app: Flask, http: FlaskClient, clock: Clock
) -> None:
    metadata = {
        **METADATA,
        "redirect_uris": ["https://photos.example.com/cb", "http://127.0.0.1:8400/cb"],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": "openid email",
        "id_token_signed_response_alg": "ES256",
        "subject_type": "pairwise",
        "post_logout_redirect_uris": ["https://photos.example.com/bye"],
        "backchannel_logout_uri": "https://photos.example.com/backchannel",
        "frontchannel_logout_uri": "https://photos.example.com/frontchannel",
        "logo_uri": "https://photos.example.com/logo.png",  # not understood: ignored (§2)
    }
    response = register(http, metadata)
    assert response.status_code == 201, response.data
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert len(body["client_secret"]) >= 32
    assert body["client_secret_expires_at"] == 0
    assert body["client_id_issued_at"] == int(clock.now.timestamp())
    for name, value in metadata.items():
        if name != "logo_uri":
            assert body[name] == value, name
    assert "logo_uri" not in body
    client = stored(app, body["client_id"])
    assert client.check_client_secret(body["client_secret"])
    assert client.client_name == "Photos"
    assert client.redirect_uris == metadata["redirect_uris"]
    assert client.token_endpoint_auth_method == "client_secret_post"
    assert client.subject_type == "pairwise"
    assert client.is_trusted is False
    with app.app_context():
        events = db.get_session().scalars(select(AuditEvent)).all()
        assert [(event.event, event.rp) for event in events] == [
            ("client_registered", body["client_id"])
        ]
        assert TOKEN not in json.dumps(events[0].details)
        assert body["client_secret"] not in json.dumps(events[0].details)


def test_defaults_follow_rfc_7591_and_the_registrant_cannot_pick_its_privileges(
    app: Flask, http: FlaskClient
) -> None:
    metadata = {
        "redirect_uris": ["https://photos.example.com/cb"],
        "client_id": "chosen-id",
        "client_secret": "a-secret-of-my-own-choosing-0123456789",
        "is_trusted": True,
        "trusted": True,
    }
    response = register(http, metadata)
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert body["client_id"] != "chosen-id"
    assert body["client_secret"] != metadata["client_secret"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["id_token_signed_response_alg"] == "RS256"
    assert body["subject_type"] == "public"
    assert body["client_name"] == body["client_id"]
    assert "openid" in body["scope"].split()
    assert "trusted" not in body and "is_trusted" not in body
    assert stored(app, body["client_id"]).is_trusted is False


def test_a_public_client_gets_no_secret(app: Flask, http: FlaskClient) -> None:
    response = register(http, {**METADATA, "token_endpoint_auth_method": "none"})
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["token_endpoint_auth_method"] == "none"
    assert stored(app, body["client_id"]).client_secret_hash is None


def test_a_private_key_jwt_client_registers_its_public_keys(app: Flask, http: FlaskClient) -> None:
    jwks = public_jwks()
    metadata = {**METADATA, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}
    response = register(http, metadata)
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert "client_secret" not in body
    assert body["jwks"] == jwks
    assert stored(app, body["client_id"]).jwks == jwks


def private_jwks() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))]}


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"client_name": "x"}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://photos.example.com/cb"}, "invalid_redirect_uri"),
        ({"redirect_uris": [42]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://photos.example.com/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://photos.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ['https://photos.example.com/\u00e9"\\cb#x']}, "invalid_redirect_uri"),
        ({"redirect_uris": [f"https://e.example/{n}" for n in range(21)]}, "invalid_redirect_uri"),
        (
            {**METADATA, "token_endpoint_auth_method": "client_secret_jwt"},
            "invalid_client_metadata",
        ),
        ({**METADATA, "token_endpoint_auth_method": 7}, "invalid_client_metadata"),
        ({**METADATA, "response_types": ["token"]}, "invalid_client_metadata"),
        ({**METADATA, "response_types": ["code", "id_token"]}, "invalid_client_metadata"),
        ({**METADATA, "grant_types": ["implicit"]}, "invalid_client_metadata"),
        (
            {**METADATA, "grant_types": ["password", "authorization_code"]},
            "invalid_client_metadata",
        ),
        ({**METADATA, "grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        (
            {
                **METADATA,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "client_credentials"],
            },
            "invalid_client_metadata",
        ),
        ({**METADATA, "scope": "openid admin"}, "invalid_client_metadata"),
        ({**METADATA, "scope": ["openid"]}, "invalid_client_metadata"),
        ({**METADATA, "client_name": ""}, "invalid_client_metadata"),
        ({**METADATA, "client_name": {"en": "x"}}, "invalid_client_metadata"),
        ({**METADATA, "client_name": "x" * 201}, "invalid_client_metadata"),
        ({**METADATA, "id_token_signed_response_alg": "HS256"}, "invalid_client_metadata"),
        ({**METADATA, "id_token_signed_response_alg": "none"}, "invalid_client_metadata"),
        ({**METADATA, "subject_type": "secret"}, "invalid_client_metadata"),
        ({**METADATA, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({**METADATA, "jwks": "not-a-set"}, "invalid_client_metadata"),
        ({**METADATA, "jwks": {"keys": []}}, "invalid_client_metadata"),
        ({**METADATA, "jwks": {"keys": [{"n": "x"}]}}, "invalid_client_metadata"),
        ({**METADATA, "jwks_uri": "http://keys.example.com/jwks"}, "invalid_client_metadata"),
        (
            {
                **METADATA,
                "jwks_uri": "https://keys.example.com/jwks",
                "jwks": {"keys": [{"kty": "RSA"}]},
            },
            "invalid_client_metadata",
        ),
        (
            {**METADATA, "post_logout_redirect_uris": ["ftp://x.example/"]},
            "invalid_client_metadata",
        ),
        (
            {**METADATA, "post_logout_redirect_uris": "https://x.example/"},
            "invalid_client_metadata",
        ),
        ({**METADATA, "backchannel_logout_uri": "https://x.example/#f"}, "invalid_client_metadata"),
        (
            {**METADATA, "frontchannel_logout_uri": ["https://x.example/"]},
            "invalid_client_metadata",
        ),
        # Control characters: NUL would reach PostgreSQL, a newline would be stored as is.
        ({**METADATA, "client_name": "Pho\u0000tos"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://photos.example.com/cb\u0000"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://photos.example.com/c\nb"]}, "invalid_redirect_uri"),
        ({**METADATA, "jwks_uri": "https://keys.example.com/\u0000"}, "invalid_client_metadata"),
        (
            {**METADATA, "backchannel_logout_uri": "https://x.example/\u0000"},
            "invalid_client_metadata",
        ),
        # A JWK Set must hold usable public keys, never a shared secret.
        (
            {
                **METADATA,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "RSA", "n": "\u0000", "e": "AQAB"}]},
            },
            "invalid_client_metadata",
        ),
        (
            {
                **METADATA,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1pZHA"}]},
            },
            "invalid_client_metadata",
        ),
        (
            {
                **METADATA,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]},
            },
            "invalid_client_metadata",
        ),
        (["https://photos.example.com/cb"], "invalid_client_metadata"),
        ("https://photos.example.com/cb", "invalid_client_metadata"),
        (None, "invalid_client_metadata"),
    ],
)
def test_bad_metadata_is_refused_and_nothing_is_stored(
    app: Flask, http: FlaskClient, metadata: Any, error: str
) -> None:
    response = http.post(
        "/register",
        data=json.dumps(metadata),
        headers={**BEARER, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.data
    body = response.get_json()
    assert body["error"] == error
    assert body["error_description"].isascii() and '"' not in body["error_description"]
    assert "client_id" not in body
    assert state(app) == (0, 0)


def test_a_private_jwk_is_refused(app: Flask, http: FlaskClient) -> None:
    metadata = {**METADATA, "token_endpoint_auth_method": "private_key_jwt", "jwks": private_jwks()}
    response = register(http, metadata)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert state(app) == (0, 0)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"redirect_uris": ["https://photos.example.com/cb"]', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b"", "application/json"),
        (b" " * (64 * 1024 + 1), "application/json"),
        (json.dumps(METADATA).encode(), "text/plain"),
        (json.dumps(METADATA).encode(), None),
        (
            b"redirect_uris=https%3A%2F%2Fphotos.example.com%2Fcb",
            "application/x-www-form-urlencoded",
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_is_invalid_client_metadata(
    app: Flask, http: FlaskClient, data: bytes, content_type: str | None
) -> None:
    headers = dict(BEARER)
    if content_type:
        headers["Content-Type"] = content_type
    response = http.post("/register", data=data, headers=headers)
    assert response.status_code == 400, response.data
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert state(app) == (0, 0)


def test_registration_only_answers_post(app: Flask, http: FlaskClient) -> None:
    response = http.get("/register", headers=BEARER)
    assert response.status_code == 405
    assert state(app) == (0, 0)


def test_a_registered_client_completes_the_code_flow_after_consent(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    response = register(http, {**METADATA, "is_trusted": True})
    assert response.status_code == 201, response.data
    body = response.get_json()
    client = oidc.Client(body["client_id"], body["client_secret"], METADATA["redirect_uris"][0])
    verifier, challenge = oidc.pkce_pair()
    page = oidc.authorize(http, client, code_challenge=challenge, code_challenge_method="S256")
    # Whatever the registrant claimed, the user is asked first.
    assert page.status_code == 200 and b'name="decision"' in page.data
    assert b"Photos" in page.data
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    tokens = oidc.exchange(http, client, code, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.data
    id_token = oidc.decode(http, tokens.get_json()["id_token"], audience=client.client_id)
    assert id_token["email"] == logged_in.email
    assert id_token["nonce"] == "nonce-456"


def test_a_registered_public_client_completes_the_code_flow_with_pkce(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    redirect_uri = "http://127.0.0.1:8400/callback"
    response = register(
        http, {"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"}
    )
    assert response.status_code == 201, response.data
    client = oidc.Client(response.get_json()["client_id"], None, redirect_uri)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    tokens = oidc.exchange(http, client, code, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.data
    id_token = oidc.decode(http, tokens.get_json()["id_token"], audience=client.client_id)
    assert id_token["email"] == logged_in.email


def test_discovery_names_the_registration_endpoint(app: Flask, http: FlaskClient) -> None:
    document = http.get("/.well-known/openid-configuration").get_json()
    assert document["registration_endpoint"] == "http://idp.test/register"


INTERNAL_URIS = [
    "https://127.0.0.1/hook",
    "https://localhost:8443/hook",  # a name: refused for what it resolves to
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "https://172.16.5.4/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://[fd00::1]/hook",
    "http://127.0.0.1:8080/hook",
]


@pytest.mark.parametrize("member", ["jwks_uri", "backchannel_logout_uri"])
@pytest.mark.parametrize("uri", INTERNAL_URIS)
def test_a_registrant_cannot_point_the_idp_at_internal_addresses(
    app: Flask, http: FlaskClient, member: str, uri: str
) -> None:
    # The IdP fetches these URIs itself (SSRF): a registrant gets public https only.
    response = register(http, {**METADATA, member: uri})
    assert response.status_code == 400, response.data
    body = response.get_json()
    assert body["error"] == "invalid_client_metadata"
    assert body["error_description"].isascii()
    assert state(app) == (0, 0)


def test_only_registrants_are_held_to_public_addresses(app: Flask, http: FlaskClient) -> None:
    response = register(http, {**METADATA, "backchannel_logout_uri": "https://rp.example/bc"})
    assert response.status_code == 201, response.data
    assert stored(app, response.get_json()["client_id"]).is_self_registered is True
    # The operator's own clients keep loopback (the demo apps live there).
    operator = oidc.register(app, "Notes", backchannel_logout_uri="http://127.0.0.1:5001/bc")
    assert stored(app, operator.client_id).is_self_registered is False
