"""The token endpoint with the authorization code grant (RFC 6749 §4.1.3, §5; RFC 9068)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from idp import db
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import OAuthToken
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc


def state_of(app: Flask) -> tuple[int, int, int]:
    """Return (tokens, revoked tokens, used codes): what a refused request must not change."""
    with app.app_context():
        session = db.get_session()
        tokens = session.scalar(select(func.count()).select_from(OAuthToken)) or 0
        revoked = (
            session.scalar(
                select(func.count())
                .select_from(OAuthToken)
                .where(OAuthToken.revoked_at.is_not(None))
            )
            or 0
        )
        used = (
            session.scalar(
                select(func.count())
                .select_from(AuthorizationCode)
                .where(AuthorizationCode.used_at.is_not(None))
            )
            or 0
        )
        return tokens, revoked, used


def assert_token_error(response: Any, error: str, status: int = 400) -> None:
    """Check the RFC 6749 §5.2 shape: JSON ``error``, the status, and no caching."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error, body
    assert set(body) <= {"error", "error_description", "error_uri"}
    assert response.headers["Cache-Control"] == "no-store"


def introspect(http: FlaskClient, introspector: oidc.Client, token: str) -> dict[str, Any]:
    response = http.post("/introspect", data={"token": token}, auth=introspector.basic_auth)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def rp(app: Flask) -> oidc.Client:
    return oidc.register(app, "Notes")


@pytest.fixture
def pkce() -> tuple[str, str]:
    return oidc.pkce_pair()


def code_for(http: FlaskClient, client: oidc.Client, pkce: tuple[str, str], **params: str) -> str:
    return oidc.get_code(
        http, client, code_challenge=pkce[1], code_challenge_method="S256", **params
    )


def test_code_of_another_client_is_invalid_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, pkce: tuple[str, str]
) -> None:
    other = oidc.register(app, "Wiki")
    code = code_for(http, rp, pkce)
    before = state_of(app)

    response = oidc.exchange(http, other, code, code_verifier=pkce[0])

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before
    # The rightful client can still redeem it: the other client's attempt burned nothing.
    assert oidc.exchange(http, rp, code, code_verifier=pkce[0]).status_code == 200


def test_redirect_uri_must_match(
    app: Flask, http: FlaskClient, logged_in: TestUser, pkce: tuple[str, str]
) -> None:
    rp = oidc.register(
        app,
        "Notes",
        redirect_uris=["https://rp.example.com/callback", "https://rp.example.com/other"],
    )
    code = code_for(http, rp, pkce)
    before = state_of(app)

    for redirect_uri in ("https://rp.example.com/other", "https://rp.example.com/callback/"):
        response = oidc.exchange(http, rp, code, code_verifier=pkce[0], redirect_uri=redirect_uri)
        assert_token_error(response, "invalid_grant")
    response = http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": pkce[0]},
        auth=rp.basic_auth,
    )
    assert_token_error(response, "invalid_grant")

    assert state_of(app) == before


@pytest.mark.parametrize(
    "verifier",
    [None, "wrong-verifier-" + "x" * 40, "short"],
    ids=["missing", "wrong", "malformed"],
)
def test_pkce_verifier_must_match(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    pkce: tuple[str, str],
    verifier: str | None,
) -> None:
    code = code_for(http, rp, pkce)
    before = state_of(app)

    form = {"code_verifier": verifier} if verifier else {}
    response = oidc.exchange(http, rp, code, **form)

    assert response.get_json()["error"] in {"invalid_grant", "invalid_request"}
    assert_token_error(response, response.get_json()["error"])
    assert state_of(app) == before


def test_verifier_without_challenge_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    code = oidc.get_code(http, rp)
    before = state_of(app)

    response = oidc.exchange(http, rp, code, code_verifier="x" * 50)

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


def test_code_expires_after_60_seconds(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    pkce: tuple[str, str],
    clock: Clock,
) -> None:
    code = code_for(http, rp, pkce)
    clock.advance(seconds=61)
    before = state_of(app)

    response = oidc.exchange(http, rp, code, code_verifier=pkce[0])

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before


def test_code_is_still_good_at_59_seconds(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    pkce: tuple[str, str],
    clock: Clock,
) -> None:
    code = code_for(http, rp, pkce)
    clock.advance(seconds=59)

    response = oidc.exchange(http, rp, code, code_verifier=pkce[0])

    assert response.status_code == 200, response.data


def test_code_of_a_revoked_login_is_invalid_grant(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: Any,
    rp: oidc.Client,
    pkce: tuple[str, str],
) -> None:
    code = code_for(http, rp, pkce)
    assert auth.logout().status_code in (200, 302)
    before = state_of(app)

    response = oidc.exchange(http, rp, code, code_verifier=pkce[0])

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before


def test_access_token_is_an_rfc9068_jwt(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, pkce: tuple[str, str]
) -> None:
    code = code_for(http, rp, pkce, scope="openid email")
    body = oidc.exchange(http, rp, code, code_verifier=pkce[0]).get_json()
    access_token = body["access_token"]

    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] in oidc.jwks_client_keys(http)
    claims = oidc.decode(
        http,
        access_token,
        audience=rp.client_id,
        options={"require": ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]},
    )
    id_token = oidc.decode(http, body["id_token"], audience=rp.client_id)
    assert claims["client_id"] == rp.client_id
    assert claims["scope"] == "openid email" == body["scope"]
    assert claims["sub"] == id_token["sub"]
    assert claims["sid"] == id_token["sid"]
    assert claims["exp"] - claims["iat"] == 600
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


def test_access_token_jti_is_unique(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, pkce: tuple[str, str]
) -> None:
    jtis = set()
    for nonce in ("n-1", "n-2"):
        verifier, challenge = oidc.pkce_pair()
        code = oidc.get_code(
            http, rp, code_challenge=challenge, code_challenge_method="S256", nonce=nonce
        )
        body = oidc.exchange(http, rp, code, code_verifier=verifier).get_json()
        jtis.add(oidc.decode(http, body["access_token"], audience=rp.client_id)["jti"])
    assert len(jtis) == 2


def test_access_token_lifetime_follows_the_setting(
    settings: dict[str, Any], http: FlaskClient, app: Flask, logged_in: TestUser
) -> None:
    # ``settings`` is read by ``app``; this test builds its own app to change it.
    from idp import create_app
    from tests.conftest import reset_schema

    settings = {**settings, "access_token_ttl": 120}
    short = create_app(settings)
    short.extensions["idp.clock"] = app.extensions["idp.clock"]
    reset_schema(short)
    client = oidc.register(short, "Notes")
    browser = short.test_client()
    from tests.conftest import AuthActions
    from tests.conftest import make_user

    make_user(short, "bob@example.com", "bob password 123")
    assert AuthActions(browser).login("bob@example.com", "bob password 123").status_code == 302
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(browser, client, code_challenge=challenge, code_challenge_method="S256")
    body = oidc.exchange(browser, client, code, code_verifier=verifier).get_json()

    claims = oidc.decode(browser, body["access_token"], audience=client.client_id)
    assert claims["exp"] - claims["iat"] == 120 == body["expires_in"]
    db.get_database(short).engine.dispose()


# Bad input ---------------------------------------------------------------------------


def test_get_is_refused(app: Flask, http: FlaskClient, rp: oidc.Client) -> None:
    before = state_of(app)

    response = http.get(
        "/token", query_string={"grant_type": "client_credentials"}, auth=rp.basic_auth
    )

    assert_token_error(response, "invalid_request", 405)
    assert "POST" in response.headers["Allow"]
    assert state_of(app) == before


def test_json_body_is_refused(app: Flask, http: FlaskClient, rp: oidc.Client) -> None:
    before = state_of(app)

    response = http.post("/token", json={"grant_type": "client_credentials"}, auth=rp.basic_auth)

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


def test_parameters_in_the_query_string_are_refused(
    app: Flask, http: FlaskClient, rp: oidc.Client
) -> None:
    before = state_of(app)

    response = http.post(
        "/token?scope=admin", data={"grant_type": "client_credentials"}, auth=rp.basic_auth
    )

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=x", "text/plain", "application/xml"],
)
def test_other_body_types_are_refused(
    app: Flask, http: FlaskClient, rp: oidc.Client, content_type: str
) -> None:
    before = state_of(app)

    response = http.post(
        "/token",
        data=b"grant_type=client_credentials",
        content_type=content_type,
        auth=rp.basic_auth,
    )

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "username": "alice@example.com", "password": "x"},
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
        {"grant_type": "implicit"},
    ],
    ids=["password", "device_code", "implicit"],
)
def test_unknown_grant_type(
    app: Flask, http: FlaskClient, rp: oidc.Client, form: dict[str, str]
) -> None:
    before = state_of(app)

    response = http.post("/token", data=form, auth=rp.basic_auth)

    assert_token_error(response, "unsupported_grant_type")
    assert state_of(app) == before


@pytest.mark.parametrize("form", [{"code": "abc"}, {"grant_type": ""}], ids=["absent", "empty"])
def test_missing_grant_type(
    app: Flask, http: FlaskClient, rp: oidc.Client, form: dict[str, str]
) -> None:
    before = state_of(app)

    response = http.post("/token", data=form, auth=rp.basic_auth)

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


def test_missing_code(app: Flask, http: FlaskClient, rp: oidc.Client) -> None:
    before = state_of(app)

    response = http.post(
        "/token",
        data={"grant_type": "authorization_code", "redirect_uri": rp.redirect_uri},
        auth=rp.basic_auth,
    )

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


@pytest.mark.parametrize("name", ["code", "grant_type", "redirect_uri", "code_verifier"])
def test_duplicated_parameter_is_invalid_request(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    pkce: tuple[str, str],
    name: str,
) -> None:
    code = code_for(http, rp, pkce)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp.redirect_uri,
        "code_verifier": pkce[0],
    }
    data = MultiDict([*form.items(), (name, form[name])])
    before = state_of(app)

    response = http.post("/token", data=data, auth=rp.basic_auth)

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before
    # Refusing the malformed request did not burn the code.
    assert oidc.exchange(http, rp, code, code_verifier=pkce[0]).status_code == 200


@pytest.mark.parametrize("name", ["code", "redirect_uri", "code_verifier", "scope"])
def test_oversized_parameter_is_invalid_request(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    pkce: tuple[str, str],
    name: str,
) -> None:
    code = code_for(http, rp, pkce)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": rp.redirect_uri,
        "code_verifier": pkce[0],
        name: "a" * 5000,
    }
    before = state_of(app)

    response = http.post("/token", data=form, auth=rp.basic_auth)

    assert_token_error(response, "invalid_request")
    assert state_of(app) == before


def test_oversized_body_is_refused(app: Flask, http: FlaskClient, rp: oidc.Client) -> None:
    before = state_of(app)

    response = http.post(
        "/token",
        data={"grant_type": "client_credentials", "padding": "a" * (2 * 1024 * 1024)},
        auth=rp.basic_auth,
    )

    assert_token_error(response, "invalid_request", 413)
    assert state_of(app) == before


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=authorization_code&code=%ZZ&redirect_uri=%",
        b"grant_type=authorization_code&code=\xff\xfe&redirect_uri=x",
        b"grant_type=authorization_code&code=a%00b",
        b"&&&===&grant_type",
        b"grant_type=authorization_code&code=" + b"%E2%82" * 10,
    ],
    ids=["bad-percent", "not-utf8", "nul", "garbage", "truncated-utf8"],
)
def test_malformed_form_never_fails_the_server(
    app: Flask, http: FlaskClient, rp: oidc.Client, body: bytes
) -> None:
    before = state_of(app)

    response = http.post(
        "/token",
        data=body,
        content_type="application/x-www-form-urlencoded",
        auth=rp.basic_auth,
    )

    assert response.status_code == 400, response.data
    assert response.get_json()["error"] in {"invalid_request", "invalid_grant"}
    assert response.headers["Cache-Control"] == "no-store"
    assert state_of(app) == before


def test_unknown_code_is_invalid_grant(app: Flask, http: FlaskClient, rp: oidc.Client) -> None:
    before = state_of(app)

    response = oidc.exchange(http, rp, "not-a-code")

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before


def test_client_without_the_code_grant_is_unauthorized(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, pkce: tuple[str, str]
) -> None:
    machine = oidc.register(app, "Machine", grant_types=["client_credentials"])
    before = state_of(app)

    response = oidc.exchange(http, machine, "whatever")

    assert_token_error(response, "unauthorized_client")
    assert state_of(app) == before
