"""Client authentication at the token endpoint (RFC 6749 §2.3, §5.2; RFC 7523; OIDC Core §9)."""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models.oidc import ReplayEntry
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.oidc.test_token import assert_token_error
from tests.oidc.test_token import state_of

TOKEN_URL = "http://idp.test/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assert_invalid_client(response: Any, *, basic: bool) -> None:
    """RFC 6749 §5.2: invalid_client; 401 with WWW-Authenticate when Basic was tried."""
    if basic:
        assert_token_error(response, "invalid_client", 401)
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    else:
        assert response.status_code in (400, 401), response.data
        assert_token_error(response, "invalid_client", response.status_code)


@functools.cache
def private_key(kind: str, slot: int) -> Any:
    """One key per kind and slot for the run: an RSA key costs ~40 ms to generate.

    Each test has its own database, so sharing key material between tests shares nothing else;
    a test that needs two different keys takes two slots.
    """
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class KeyPair:
    """A client's signing key: PyJWT signs, the IdP gets only the public JWK."""

    def __init__(self, kind: str = "RSA", slot: int = 0) -> None:
        self.kid = secrets.token_hex(4)
        self.private: Any = private_key(kind, slot)
        if kind == "RSA":
            self.alg = "RS256"
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.alg = "ES256"
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.public_jwk = {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def claims(self, client_id: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": TOKEN_URL,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
            **overrides,
        }
        return {key: value for key, value in claims.items() if value is not None}

    def assertion(self, client_id: str, **overrides: Any) -> str:
        return jwt.encode(
            self.claims(client_id, **overrides),
            self.private,
            algorithm=self.alg,
            headers={"kid": self.kid},
        )


@pytest.fixture
def keys() -> KeyPair:
    return KeyPair()


def register_jwt_client(app: Flask, keys: KeyPair, name: str = "Machine") -> str:
    client = oidc.register(app, name, token_endpoint_auth_method="private_key_jwt", jwks=keys.jwks)
    assert client.client_secret is None
    return client.client_id


def with_assertion(assertion: str, **form: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **form}


CC = {"grant_type": "client_credentials"}


def replay_rows(app: Flask) -> int:
    with app.app_context():
        return db.get_session().scalar(select(func.count()).select_from(ReplayEntry)) or 0


# Shared secrets -------------------------------------------------------------------------


def test_client_secret_basic(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)

    response = http.post("/token", data=CC, auth=client.basic_auth)

    assert response.status_code == 200, response.data
    assert state_of(app)[0] == 1


def test_client_secret_basic_with_url_encoded_credentials(app: Flask, http: FlaskClient) -> None:
    # RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic encoding.
    client = oidc.register(
        app, client_id="notes:app", client_secret="s3cret/with+special:chars&more-padding"
    )
    from urllib.parse import quote

    raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret or '', safe='')}"
    header = "Basic " + base64.b64encode(raw.encode()).decode()

    response = http.post("/token", data=CC, headers={"Authorization": header})

    assert response.status_code == 200, response.data


def test_client_secret_post(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app, token_endpoint_auth_method="client_secret_post")
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")

    response = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
            "client_id": client.client_id,
            "client_secret": client.client_secret or "",
        },
    )

    assert response.status_code == 200, response.data
    assert "id_token" in response.get_json()


def test_none_for_a_public_client_with_pkce(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    assert client.client_secret is None
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")

    response = oidc.exchange(http, client, code, code_verifier=verifier)

    assert response.status_code == 200, response.data


def test_public_client_sending_a_secret_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    before = state_of(app)

    response = oidc.exchange(http, client, code, code_verifier=verifier, client_secret="guess")

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_wrong_secret(app: Flask, http: FlaskClient, logged_in: TestUser, method: str) -> None:
    client = oidc.register(app, token_endpoint_auth_method=method)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
    }
    before = state_of(app)

    if method == "client_secret_basic":
        response = http.post("/token", data=form, auth=(client.client_id, "wrong" * 8))
    else:
        form.update(client_id=client.client_id, client_secret="wrong" * 8)
        response = http.post("/token", data=form)

    assert_invalid_client(response, basic=method == "client_secret_basic")
    assert state_of(app) == before  # the code was not spent either


def test_unknown_client_with_basic(app: Flask, http: FlaskClient) -> None:
    before = state_of(app)

    response = http.post("/token", data=CC, auth=("nobody", "x" * 40))

    assert_invalid_client(response, basic=True)
    assert state_of(app) == before


def test_unknown_client_with_post(app: Flask, http: FlaskClient) -> None:
    before = state_of(app)

    response = http.post("/token", data={**CC, "client_id": "nobody", "client_secret": "x" * 40})

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def test_basic_client_using_post_is_refused(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)  # client_secret_basic
    before = state_of(app)

    response = http.post(
        "/token",
        data={**CC, "client_id": client.client_id, "client_secret": client.client_secret or ""},
    )

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def test_post_client_using_basic_is_refused(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, token_endpoint_auth_method="client_secret_post")
    before = state_of(app)

    response = http.post("/token", data=CC, auth=client.basic_auth)

    assert_invalid_client(response, basic=True)
    assert state_of(app) == before


@pytest.mark.parametrize(
    "form",
    [{}, {"client_id": "placeholder"}],
    ids=["nothing", "client_id-only"],
)
def test_confidential_client_without_credentials(
    app: Flask, http: FlaskClient, logged_in: TestUser, form: dict[str, str]
) -> None:
    client = oidc.register(app)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
        **{key: client.client_id for key in form},
    }
    before = state_of(app)

    response = http.post("/token", data=data)

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abc",
    ],
    ids=["empty", "not-base64", "no-colon", "not-utf8", "bearer"],
)
def test_malformed_authorization_header(app: Flask, http: FlaskClient, header: str) -> None:
    oidc.register(app)
    before = state_of(app)

    response = http.post("/token", data=CC, headers={"Authorization": header})

    assert response.status_code in (400, 401), response.data
    assert_token_error(response, "invalid_client", response.status_code)
    assert state_of(app) == before


def test_disabled_client_is_refused(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)
    with app.app_context():
        from idp.oidc import storage

        row = storage.get_client(client.client_id)
        assert row is not None
        row.is_disabled = True
        db.get_session().commit()
    before = state_of(app)

    response = http.post("/token", data=CC, auth=client.basic_auth)

    assert_invalid_client(response, basic=True)
    assert state_of(app) == before


# private_key_jwt ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_private_key_jwt(app: Flask, http: FlaskClient, kind: str) -> None:
    keys = KeyPair(kind)
    client_id = register_jwt_client(app, keys)

    response = http.post("/token", data=with_assertion(keys.assertion(client_id), **CC))

    assert response.status_code == 200, response.data
    claims = oidc.decode(http, response.get_json()["access_token"], audience=client_id)
    assert claims["sub"] == claims["client_id"] == client_id


def test_private_key_jwt_without_kid(app: Flask, http: FlaskClient, keys: KeyPair) -> None:
    # RFC 7515 makes kid optional: with one registered key there is nothing to choose.
    client_id = register_jwt_client(app, keys)
    assertion = jwt.encode(keys.claims(client_id), keys.private, algorithm=keys.alg)

    response = http.post("/token", data=with_assertion(assertion, **CC))

    assert response.status_code == 200, response.data


def test_private_key_jwt_with_the_issuer_as_audience(
    app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    # OIDC Core §9: the audience SHOULD be the token endpoint; RFC 7523 also allows the issuer.
    client_id = register_jwt_client(app, keys)

    assertion = keys.assertion(client_id, aud=["http://idp.test"])
    response = http.post("/token", data=with_assertion(assertion, **CC))

    assert response.status_code == 200, response.data


def test_private_key_jwt_on_the_code_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser, keys: KeyPair
) -> None:
    client_id = register_jwt_client(app, keys, "Notes")
    client = oidc.Client(client_id, None)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")

    response = http.post(
        "/token",
        data=with_assertion(
            keys.assertion(client_id),
            grant_type="authorization_code",
            code=code,
            redirect_uri=client.redirect_uri,
            code_verifier=verifier,
        ),
    )

    assert response.status_code == 200, response.data
    assert oidc.decode(http, response.get_json()["id_token"], audience=client_id)["sid"]


def test_private_key_jwt_client_cannot_use_none(
    app: Flask, http: FlaskClient, logged_in: TestUser, keys: KeyPair
) -> None:
    client_id = register_jwt_client(app, keys, "Notes")
    client = oidc.Client(client_id, None)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    before = state_of(app)

    response = oidc.exchange(http, client, code, code_verifier=verifier)  # client_id only

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def _alg_none(keys: KeyPair, client_id: str) -> str:
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(keys.claims(client_id))}."


def _tampered(keys: KeyPair, client_id: str) -> str:
    header, _, signature = keys.assertion(client_id).split(".")
    forged = keys.claims(client_id, exp=int(time.time()) + 300)
    return f"{header}.{b64(forged)}.{signature}"


def _wrong_key(keys: KeyPair, client_id: str) -> str:
    other = KeyPair(slot=1)
    other.kid = keys.kid  # same kid, other key: only the signature tells them apart
    return other.assertion(client_id)


def _hmac_with_public_key(keys: KeyPair, client_id: str) -> str:
    # Algorithm confusion: HS256 keyed with the public key the IdP holds.
    signing_input = f"{b64({'alg': 'HS256', 'kid': keys.kid})}.{b64(keys.claims(client_id))}"
    import hashlib
    import hmac

    secret = json.dumps(keys.public_jwk).encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


ATTACKS = {
    "wrong-key": _wrong_key,
    "alg-none": _alg_none,
    "tampered": _tampered,
    "hs256-confusion": _hmac_with_public_key,
    "wrong-aud": lambda keys, cid: keys.assertion(cid, aud="http://other.test/token"),
    "no-aud": lambda keys, cid: keys.assertion(cid, aud=None),
    "expired": lambda keys, cid: keys.assertion(cid, exp=int(time.time()) - 120),
    "no-exp": lambda keys, cid: keys.assertion(cid, exp=None),
    "too-long-lived": lambda keys, cid: keys.assertion(cid, exp=int(time.time()) + 3600),
    "no-jti": lambda keys, cid: keys.assertion(cid, jti=None),
    "iss-not-sub": lambda keys, cid: keys.assertion(cid, iss="someone-else"),
    "unknown-sub": lambda keys, cid: keys.assertion("nobody", iss="nobody"),
    "not-a-jwt": lambda keys, cid: "not.a.jwt",
    "garbage": lambda keys, cid: "%%%",
    "sub-not-string": lambda keys, cid: keys.assertion(cid, sub=["x"]),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_bad_assertion_is_invalid_client(
    app: Flask, http: FlaskClient, keys: KeyPair, attack: str
) -> None:
    client_id = register_jwt_client(app, keys)
    assertion = ATTACKS[attack](keys, client_id)
    before = state_of(app), replay_rows(app)

    response = http.post("/token", data=with_assertion(assertion, **CC))

    assert_invalid_client(response, basic=False)
    assert (state_of(app), replay_rows(app)) == before


def test_wrong_assertion_type_is_invalid_client(
    app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    client_id = register_jwt_client(app, keys)
    form = with_assertion(keys.assertion(client_id), **CC)
    form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"
    before = state_of(app)

    response = http.post("/token", data=form)

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def test_assertion_for_a_secret_client_is_refused(
    app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    client = oidc.register(app)  # client_secret_basic: its keys are no credential
    before = state_of(app)

    response = http.post("/token", data=with_assertion(keys.assertion(client.client_id), **CC))

    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def test_private_key_jwt_client_cannot_use_a_secret(
    app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    client_id = register_jwt_client(app, keys)
    before = state_of(app)

    response = http.post("/token", data=CC, auth=(client_id, "x" * 40))

    assert_invalid_client(response, basic=True)
    assert state_of(app) == before


@pytest.fixture(params=["sql", "redis"])
def replay_cache(request: pytest.FixtureRequest, settings: dict[str, Any]) -> str:
    """Choose the replay cache before ``app`` is built from ``settings``."""
    if request.param == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_url")
    return str(request.param)


def test_reused_jti_is_invalid_client(
    replay_cache: str, app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    from idp.replay import RedisReplayCache
    from idp.replay import SqlReplayCache

    expected = RedisReplayCache if replay_cache == "redis" else SqlReplayCache
    assert isinstance(app.extensions["idp.replay"], expected)
    client_id = register_jwt_client(app, keys)
    assertion = keys.assertion(client_id)
    assert http.post("/token", data=with_assertion(assertion, **CC)).status_code == 200
    assert replay_rows(app) == (1 if replay_cache == "sql" else 0)
    before = state_of(app)

    replay = http.post("/token", data=with_assertion(assertion, **CC))

    assert_invalid_client(replay, basic=False)
    assert state_of(app) == before
    # A fresh jti from the same client is fine.
    assert (
        http.post("/token", data=with_assertion(keys.assertion(client_id), **CC)).status_code == 200
    )


def test_same_jti_from_two_clients_is_no_replay(
    replay_cache: str, app: Flask, http: FlaskClient, keys: KeyPair
) -> None:
    other_keys = KeyPair(slot=1)
    first = register_jwt_client(app, keys, "One")
    second = register_jwt_client(app, other_keys, "Two")

    for client_id, pair in ((first, keys), (second, other_keys)):
        assertion = pair.assertion(client_id, jti="shared-jti")
        assert http.post("/token", data=with_assertion(assertion, **CC)).status_code == 200
