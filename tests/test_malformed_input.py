"""Generated hostile input at every OIDC, SAML and login endpoint: a 4xx, never a 500.

Control characters, NUL, bytes that are not UTF-8, huge and repeated values and JWTs whose
header or claims have the wrong types, on SQLite and PostgreSQL (which refuses NUL in text).
At the login form, the token endpoint and userinfo (PAT guessing) no input changes a stored
row either, but for the audit log and the failure counters, whose job it is to record them.
One app per test, not per example; seeded so a failure reproduces (``Fuzz``).
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey
from lxml import etree
from sqlalchemy import select

from idp import db
from tests.conftest import BACKENDS
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import rows
from tests.helpers import saml
from tests.helpers.forms import csrf_token

REGISTRATION_TOKEN = "fuzz-registration-token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


class Fuzz:
    """``@fuzz``: Hypothesis settings whose ``examples`` are shared out among the backends run.

    Each backend draws its own share from a seed of its own, fixed so a failure reproduces:
    a run on both databases sends as many distinct inputs as one on either alone, not the same
    ones twice (derandomized, both drew the same examples).
    """

    backends: tuple[str, ...] = BACKENDS  # this run's (``fuzz_backend`` sets both per test)
    backend = "sqlite"

    def __init__(self, examples: int) -> None:
        self.examples = examples

    def __call__(self, test: Callable[..., None]) -> Callable[..., None]:
        share = -(-self.examples // len(self.backends))
        chosen = hypothesis_settings(
            max_examples=share, deadline=None, database=None, suppress_health_check=SUPPRESSED
        )
        return seed(zlib.crc32(self.backend.encode()))(chosen(test))


fuzz = Fuzz(100)


@pytest.fixture(autouse=True)
def fuzz_backend(db_backend: str, request: pytest.FixtureRequest) -> None:
    chosen = request.config.getoption("--db")
    Fuzz.backends = BACKENDS if chosen == "all" else (chosen,)
    Fuzz.backend = db_backend


# -- strategies ----------------------------------------------------------------------------------

CONTROL = "".join(chr(code) for code in (*range(0x20), 0x7F, 0x85, 0x2028, 0xFEFF, 0xFFFD))
hostile_text = st.one_of(
    st.text(st.sampled_from(CONTROL + "a%+&=;\"'<>\\"), max_size=12),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.integers(2_000, 70_000).map(lambda size: "A" * size),
)
# Percent-encoded raw octets: invalid UTF-8 reaches the server as such.
hostile_bytes = st.binary(max_size=24)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@st.composite
def jwts(draw: st.DrawFn, known: dict[str, str]) -> str:
    """A compact JWS whose header or claims have members of the wrong type (``"crit": 1``)."""
    wrong = st.sampled_from([1, "x", [1], ["kid"], [], {}, None, True, 1.5]) | json_values
    header: dict[str, Any] = {"alg": "RS256", "kid": "fuzz", "typ": "JWT"}
    for name in draw(st.sets(st.sampled_from(["alg", "crit", "kid", "typ", "jwk", "x5c", "b64"]))):
        header[name] = draw(wrong)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": known["jwt_client_id"],
        "sub": known["jwt_client_id"],
        "aud": f"{known['issuer']}/token",
        "exp": now + 60,
        "iat": now,
        "jti": "jti-1",
        "sid": "sid-1",
    }
    for name in draw(st.sets(st.sampled_from(sorted(claims)), max_size=3)):
        claims[name] = draw(wrong | st.just(known["client_id"]))
    parts = [json.dumps(header).encode(), json.dumps(claims).encode()]
    if draw(st.integers(0, 9)) == 0:
        parts = [draw(hostile_bytes), draw(hostile_bytes)]
    elif draw(st.integers(0, 9)) == 0:  # nested past the JSON parser's recursion limit
        parts[draw(st.integers(0, 1))] = b"[" * 3000
    return ".".join([*map(b64url, parts), b64url(draw(hostile_bytes))])


def hostile_value(good: str) -> st.SearchStrategy[str | bytes]:
    """A good value spoiled (a control character, a NUL, huge), or junk in its place."""
    return st.one_of(
        st.tuples(st.just(good), st.sampled_from(CONTROL), st.just(good)).map("".join),
        hostile_text,
        hostile_bytes,
        st.builds(lambda size: good * size, st.integers(100, 2_000)),
    )


@st.composite
def mutated(draw: st.DrawFn, baseline: dict[str, str]) -> list[tuple[str, Any]]:
    """A real request's parameters with some spoiled, dropped, repeated, or junk added."""
    names = sorted(baseline)
    params: list[tuple[str, Any]] = [
        (name, baseline[name]) for name in names if draw(st.integers(0, 9)) > 0
    ]
    if names:
        for name in draw(st.sets(st.sampled_from(names), min_size=1, max_size=3)):
            spoiled = draw(hostile_value(baseline[name]))
            params = [(key, spoiled if key == name else value) for key, value in params]
            if draw(st.booleans()):
                params.append((name, spoiled))  # repeated, or present only spoiled
    extra = st.tuples(hostile_text | hostile_bytes, hostile_text | hostile_bytes)
    params += draw(st.lists(extra, max_size=2))
    return draw(st.permutations(params))


def header_value(value: str) -> str:
    """Return ``value`` as a raw client could put it in a header: Latin-1 octets, one line."""
    raw = value.encode("utf-8", "surrogatepass").decode("latin-1")
    return raw.replace("\r", "").replace("\n", "")


def basic_auth(client_id: str | bytes, secret: str | bytes) -> str:
    # RFC 6749 §2.3.1: each part form-encoded, then base64.
    raw = quote(client_id, safe="").encode() + b":" + quote(secret, safe="").encode()
    return "Basic " + base64.b64encode(raw).decode()


@st.composite
def authorization(draw: st.DrawFn, known: dict[str, str]) -> dict[str, str]:
    kind = draw(st.sampled_from(["none", "basic", "bearer", "raw"]))
    if kind == "basic":
        client_id = draw(st.sampled_from([known["client_id"]]) | hostile_text | hostile_bytes)
        secret = draw(st.sampled_from([known["client_secret"]]) | hostile_text | hostile_bytes)
        return {"Authorization": basic_auth(client_id, secret)}
    if kind == "bearer":
        return {"Authorization": "Bearer " + header_value(draw(jwts(known) | hostile_text))}
    if kind == "raw":
        raw = header_value(draw(hostile_bytes).decode("latin-1"))
        return {"Authorization": draw(st.sampled_from(["Basic ", "Bearer ", ""])) + raw}
    return {}


# -- the app under attack ------------------------------------------------------------------------


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    settings["registration_token"] = REGISTRATION_TOKEN
    # Generated input reaches the code under test, not the per-IP 429 (tested on its own).
    settings["login_rate_limit"] = "100000 per minute"
    return settings


@pytest.fixture(scope="module")
def machine_key() -> RSAKey:
    """The private_key_jwt client's key pair: one per module (generating one takes ~0.1 s)."""
    return RSAKey.generate_key(2048, parameters={"kid": "fuzz"})


@pytest.fixture
def known(
    machine_key: RSAKey, app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> dict[str, str]:
    """Register a client of each kind and an SP, log the browser in; return real values."""
    confidential = oidc.register(app)
    public = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    key = machine_key
    machine = oidc.register(
        app,
        "Machine",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    saml.register(app, saml.sp_settings(http))
    assert auth.login(user.email, user.password).status_code == 302
    assert confidential.client_secret is not None
    verifier, challenge = oidc.pkce_pair()
    return {
        "client_id": confidential.client_id,
        "client_secret": confidential.client_secret,
        "public_client_id": public.client_id,
        "jwt_client_id": machine.client_id,
        "redirect_uri": confidential.redirect_uri,
        "issuer": "http://idp.test",
        "code_verifier": verifier,
        "code_challenge": challenge,
        "email": user.email,
        "password": user.password,
        "csrf_token": csrf_token(http.get("/login").data),
    }


def send(
    http: FlaskClient,
    method: str,
    path: str,
    params: list[tuple[Any, Any]],
    headers: dict[str, str] | None = None,
) -> Any:
    encoded = urlencode(params)
    if method == "GET":
        response = http.get(path, query_string=encoded, headers=headers)
    else:
        headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
        response = http.post(path, data=encoded, headers=headers)
    assert response.status_code < 500, (method, path, params, headers, response.data[:300])
    return response


def requests(known: dict[str, str]) -> dict[str, tuple[list[str], list[dict[str, str]]]]:
    """Each endpoint's methods and the real requests the generator starts from."""
    client = {"client_id": known["client_id"], "client_secret": known["client_secret"]}
    authorize = {
        "response_type": "code",
        "client_id": known["client_id"],
        "redirect_uri": known["redirect_uri"],
        "scope": "openid profile email offline_access",
        "state": "state-1",
        "nonce": "nonce-1",
        "code_challenge": known["code_challenge"],
        "code_challenge_method": "S256",
    }
    return {
        "/authorize": (
            ["GET", "POST"],
            [
                authorize,
                {**authorize, "prompt": "none", "max_age": "0", "response_mode": "form_post"},
                {**authorize, "claims": '{"id_token": {"email": null}}', "login_hint": "a"},
            ],
        ),
        "/end_session": (
            ["GET", "POST"],
            [
                {
                    "client_id": known["client_id"],
                    "post_logout_redirect_uri": known["redirect_uri"],
                    "state": "state-1",
                    "csrf_token": known["csrf_token"],
                    "confirm": "1",
                }
            ],
        ),
        "/token": (
            ["POST"],
            [
                {
                    "grant_type": "authorization_code",
                    "code": "code-1",
                    "redirect_uri": known["redirect_uri"],
                    "code_verifier": known["code_verifier"],
                    "client_id": known["public_client_id"],
                },
                {"grant_type": "refresh_token", "refresh_token": "refresh-1", **client},
                {"grant_type": "client_credentials", "scope": "openid", **client},
            ],
        ),
        "/revoke": (["POST"], [{"token": "token-1", "token_type_hint": "refresh_token", **client}]),
        "/introspect": (["POST"], [{"token": "token-1", "token_type_hint": "x", **client}]),
        "/userinfo": (["GET", "POST"], [{"access_token": "a.b.c"}]),
        "/login": (
            ["GET", "POST"],
            [
                {
                    "csrf_token": known["csrf_token"],
                    "username": known["email"],
                    "password": "wrong password",
                    "next": "/authorize?client_id=x",
                    "login_hint": known["email"],
                    "force": "1",
                }
            ],
        ),
        "/logout": (["GET", "POST"], [{"csrf_token": known["csrf_token"], "next": "/"}]),
        "/saml/sso/init": (["GET"], [{"sp": saml.SP_ENTITY_ID, "RelayState": "/home"}]),
        "/saml/sso/resume": (["GET"], [{"request": "eyJhIjoxfQ.sig"}]),
        "/saml/metadata": (["GET"], [{}]),
        "/jwks": (["GET"], [{}]),
        "/.well-known/openid-configuration": (["GET"], [{}]),
    }


def fuzz_requests(http: FlaskClient, known: dict[str, str], paths: list[str]) -> None:
    table = requests(known)

    @fuzz
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(paths))
        methods, baselines = table[path]
        params = data.draw(mutated(data.draw(st.sampled_from(baselines))))
        send(
            http, data.draw(st.sampled_from(methods)), path, params, data.draw(authorization(known))
        )

    run()


def test_oidc_front_channel_endpoints(http: FlaskClient, known: dict[str, str]) -> None:
    fuzz_requests(http, known, ["/authorize", "/end_session"])


def test_oidc_back_channel_endpoints(http: FlaskClient, known: dict[str, str]) -> None:
    fuzz_requests(
        http,
        known,
        [
            "/token",
            "/revoke",
            "/introspect",
            "/userinfo",
            "/jwks",
            "/.well-known/openid-configuration",
        ],
    )


def test_login_and_saml_get_endpoints(http: FlaskClient, known: dict[str, str]) -> None:
    fuzz_requests(
        http, known, ["/login", "/logout", "/saml/sso/init", "/saml/sso/resume", "/saml/metadata"]
    )


def test_jwts_with_hostile_headers_and_claims(http: FlaskClient, known: dict[str, str]) -> None:
    """Every place a JWT comes in: bearer, token to introspect or revoke, assertion, hint."""
    client = (known["client_id"], known["client_secret"])

    @fuzz
    @given(token=jwts(known))
    def run(token: str) -> None:
        send(http, "GET", "/userinfo", [], {"Authorization": f"Bearer {token}"})
        send(http, "POST", "/userinfo", [("access_token", token)])
        for path in ("/introspect", "/revoke"):
            send(http, "POST", path, [("token", token)], {"Authorization": basic_auth(*client)})
        assertion = [("client_assertion_type", ASSERTION_TYPE), ("client_assertion", token)]
        send(http, "POST", "/token", [("grant_type", "client_credentials"), *assertion])
        send(http, "GET", "/end_session", [("id_token_hint", token)])
        authorize = requests(known)["/authorize"][1][0]
        send(http, "GET", "/authorize", [*authorize.items(), ("id_token_hint", token)])

    run()


def test_registration_endpoint(http: FlaskClient, known: dict[str, str]) -> None:
    metadata_names = [
        "redirect_uris",
        "client_name",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "scope",
        "jwks",
        "jwks_uri",
        "post_logout_redirect_uris",
        "backchannel_logout_uri",
        "frontchannel_logout_uri",
        "id_token_signed_response_alg",
        "subject_type",
    ]
    base = {"redirect_uris": [known["redirect_uri"]], "client_name": "App"}

    @fuzz
    @given(
        metadata=st.dictionaries(st.sampled_from(metadata_names) | hostile_text, json_values)
        | json_values,
        auth=st.sampled_from([REGISTRATION_TOKEN]) | hostile_text,
    )
    def run(metadata: Any, auth: str) -> None:
        body = {**base, **metadata} if isinstance(metadata, dict) else metadata
        response = http.post(
            "/register",
            data=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Authorization": header_value(f"Bearer {auth}"),
            },
        )
        assert response.status_code < 500, (body, response.data[:300])

    run()


@st.composite
def saml_messages(draw: st.DrawFn) -> bytes:
    """An AuthnRequest or LogoutRequest with hostile attributes and text, or no XML at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(hostile_bytes | st.sampled_from([b"<x/>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>"]))
    xml_text = st.text(
        st.characters(exclude_categories=["Cs", "Cc"]) | st.sampled_from("\t\n\r"), max_size=40
    ) | st.integers(2_000, 60_000).map(lambda size: "A" * size)
    issuer = draw(st.sampled_from([saml.SP_ENTITY_ID]) | xml_text)
    if draw(st.booleans()):
        element = saml.authn_request(issuer=issuer)
        if draw(st.booleans()):
            policy = etree.SubElement(element, f"{{{saml.NS['samlp']}}}NameIDPolicy")
            policy.set("Format", draw(st.sampled_from([saml.TRANSIENT, saml.EMAIL]) | xml_text))
    else:
        element = saml.logout_request(
            name_id=draw(xml_text), session_index=draw(st.none() | xml_text), issuer=issuer
        )
    attributes = [
        "ID",
        "IssueInstant",
        "Version",
        "AssertionConsumerServiceURL",
        "AssertionConsumerServiceIndex",
        "ProtocolBinding",
        "ForceAuthn",
        "IsPassive",
        "Destination",
        "NotOnOrAfter",
    ]
    for name in draw(st.sets(st.sampled_from(attributes), max_size=3)):
        element.set(name, draw(st.sampled_from([saml.ACS_URL, "true", "1", "urn:x"]) | xml_text))
    xml: bytes = etree.tostring(element)
    return xml


def test_saml_endpoints(http: FlaskClient, known: dict[str, str]) -> None:
    @fuzz
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(["/saml/sso", "/saml/slo"]))
        field = data.draw(st.sampled_from(["SAMLRequest", "SAMLResponse"]))
        xml = data.draw(saml_messages())
        if data.draw(st.booleans()):
            encoded = base64.b64encode(zlib.compress(xml)[2:-4]).decode()
            method = "GET"
        else:
            encoded, method = base64.b64encode(xml).decode(), "POST"
        baseline = {field: encoded, "RelayState": "/home", "SigAlg": saml.RSA_SHA256}
        params = data.draw(st.just(list(baseline.items())) | mutated(baseline))
        send(http, method, path, params)

    run()


# -- the cases found by hand, spelled out --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        ("GET", "/authorize", {}),
        ("POST", "/token", {"grant_type": "authorization_code", "code": "x"}),
        ("POST", "/revoke", {"token": "x"}),
        ("GET", "/end_session", {}),
    ],
)
@pytest.mark.parametrize("field", ["client_id", "nonce"])
def test_nul_in_a_parameter_is_invalid_request(
    app: Flask,
    http: FlaskClient,
    known: dict[str, str],
    method: str,
    path: str,
    extra: Any,
    field: str,
) -> None:
    params = {"client_id": known["client_id"], "nonce": "n", **extra, field: "a\x00b"}
    before = oidc.token_rows(app), audit_count(app)
    response = send(http, method, path, list(params.items()))
    assert response.status_code == 400
    if path in ("/token", "/revoke"):
        assert response.get_json()["error"] == "invalid_request"
        assert response.headers["Cache-Control"] == "no-store"
    else:  # no validated redirect_uri: an HTML page, never a redirect
        assert "invalid_request" in response.get_data(as_text=True)
    assert (oidc.token_rows(app), audit_count(app)) == before


def test_invalid_utf8_in_a_parameter_is_invalid_request(
    http: FlaskClient, known: dict[str, str]
) -> None:
    response = http.post(
        "/token",
        data=b"grant_type=client_credentials&scope=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(known["client_id"], known["client_secret"]),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_nul_in_basic_credentials_is_invalid_client(http: FlaskClient) -> None:
    response = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic_auth("a\x00b", "secret")},
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def crit_token(known: dict[str, str]) -> str:
    header = {"alg": "RS256", "kid": "fuzz", "crit": 1}
    claims = {"iss": known["jwt_client_id"], "sub": known["jwt_client_id"], "exp": 2**31}
    return ".".join(b64url(json.dumps(part).encode()) for part in (header, claims, "sig"))


def test_crit_header_of_the_wrong_type_is_an_invalid_token(
    app: Flask, http: FlaskClient, known: dict[str, str]
) -> None:
    token = crit_token(known)
    client = (known["client_id"], known["client_secret"])
    before = oidc.token_rows(app), audit_count(app)

    response = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    response = http.post("/introspect", data={"token": token}, auth=client)
    assert (response.status_code, response.get_json()) == (200, {"active": False})
    response = http.post("/revoke", data={"token": token}, auth=client)
    assert response.status_code == 200  # RFC 7009 §2.2: an invalid token is no error
    response = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": token,
        },
    )
    # RFC 6749 §5.2: invalid_client is a 401 only when the client used the Authorization header.
    assert (response.status_code, response.get_json()["error"]) == (400, "invalid_client")
    assert (oidc.token_rows(app), audit_count(app)) == before


def audit_count(app: Flask) -> int:
    from sqlalchemy import func
    from sqlalchemy import select

    from idp import db
    from idp.models.audit import AuditEvent

    with app.app_context():
        count: int = db.get_session().scalar(select(func.count()).select_from(AuditEvent)) or 0
        return count


# -- no stored state changes ---------------------------------------------------------------------

# What records a failed attempt by design: the audit log and the brute-force counters.
RECORDS_OF_ATTEMPTS = ("audit_event", "failure_counter")
fuzz_state = Fuzz(25)


def assert_nothing_stored(app: Flask, before: dict[str, Any], response: Any, what: object) -> None:
    assert response.status_code < 500, (what, response.data[:300])
    assert rows.snapshot(app, exclude=RECORDS_OF_ATTEMPTS) == before, what


def test_no_login_form_input_changes_stored_state(app: Flask, known: dict[str, str]) -> None:
    stranger = app.test_client()  # not signed in: a signed-in browser's session would move
    baseline = {
        "csrf_token": csrf_token(stranger.get("/login").data),
        "username": known["email"],
        "password": "wrong password",
        "next": "/account/",
        "force": "1",
    }
    before = rows.snapshot(app, exclude=RECORDS_OF_ATTEMPTS)

    @fuzz_state
    @given(params=mutated(baseline))
    def run(params: list[tuple[Any, Any]]) -> None:
        response = send(stranger, "POST", "/login", params)
        assert response.status_code != 302 or "/login" in response.headers["Location"], params
        assert_nothing_stored(app, before, response, params)

    run()


def test_no_token_request_without_a_valid_grant_changes_stored_state(
    app: Flask, known: dict[str, str]
) -> None:
    secret = {"client_id": known["client_id"], "client_secret": known["client_secret"]}
    wrong = {"client_id": known["client_id"], "client_secret": "not the secret at all " * 2}
    baselines = [
        {
            "grant_type": "authorization_code",
            "code": "a code never issued",
            "redirect_uri": known["redirect_uri"],
            "code_verifier": known["code_verifier"],
            "client_id": known["public_client_id"],
        },
        {"grant_type": "authorization_code", "code": "code-1", **secret},
        {"grant_type": "refresh_token", "refresh_token": "a refresh token never issued", **secret},
        {"grant_type": "client_credentials", "scope": "openid", **wrong},
        {
            "grant_type": "client_credentials",
            "client_id": known["jwt_client_id"],
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": "an.unsigned.assertion",
        },
    ]
    stranger = app.test_client()
    before = rows.snapshot(app, exclude=RECORDS_OF_ATTEMPTS)

    @fuzz_state
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        params = data.draw(mutated(data.draw(st.sampled_from(baselines))))
        response = send(stranger, "POST", "/token", params)
        assert response.status_code in (400, 401), (params, response.data[:300])
        assert_nothing_stored(app, before, response, params)

    run()


@st.composite
def pat_guesses(draw: st.DrawFn, real: str) -> str:
    """A real token spoiled by one character, cut or grown, a well-formed stranger, or junk."""
    from idp.tokens.format import generate_token

    kind = draw(st.sampled_from(["spoiled", "cut", "grown", "well-formed", "junk"]))
    if kind == "spoiled":
        at = draw(st.integers(0, len(real) - 1))
        guess = real[:at] + draw(st.characters(exclude_categories=["Cs"])) + real[at + 1 :]
    elif kind == "cut":
        guess = real[: draw(st.integers(0, len(real) - 1))]
    elif kind == "grown":
        guess = real + draw(st.text(min_size=1, max_size=5))
    elif kind == "well-formed":
        guess = generate_token()  # right length and checksum, stored nowhere
    else:
        guess = str(draw(hostile_text))
    return guess


def test_no_bearer_guess_at_userinfo_changes_stored_state(
    app: Flask, known: dict[str, str]
) -> None:
    from idp.models.user import User
    from idp.tokens import service as pats

    with app.app_context():
        owner = db.get_session().scalars(select(User)).one()
        expires_at = db.now() + timedelta(days=30)
        _, real = pats.create_token(owner, name="script", scopes=["openid"], expires_at=expires_at)
    stranger = app.test_client()
    before = rows.snapshot(app, exclude=RECORDS_OF_ATTEMPTS)

    @fuzz_state
    @given(guess=pat_guesses(real))
    def run(guess: str) -> None:
        assume(guess != real)
        header = {"Authorization": "Bearer " + header_value(guess)}
        response = send(stranger, "GET", "/userinfo", [], header)
        assert response.status_code in (400, 401), (guess, response.data[:300])
        assert_nothing_stored(app, before, response, guess)
        response = send(stranger, "POST", "/userinfo", [("access_token", guess)])
        assert response.status_code in (400, 401), (guess, response.data[:300])
        assert_nothing_stored(app, before, response, guess)

    run()
    # The real token works, and its use is recorded: the snapshot would have seen a change.
    used = stranger.get("/userinfo", headers={"Authorization": f"Bearer {real}"})
    assert used.status_code == 200
    assert rows.snapshot(app, exclude=RECORDS_OF_ATTEMPTS) != before


def test_otp_step(app: Flask, user: TestUser) -> None:
    """Hostile ``otp`` forms at the second login step: never a 500, never a login."""
    from sqlalchemy import select

    from idp import db
    from idp.models import LoginSession
    from idp.models import TotpFactor
    from tests.helpers import mfa

    mfa.enrol(app, user.email)
    browser = app.test_client()
    assert AuthActions(browser).login(user.email, user.password).status_code == 303
    token = csrf_token(browser.get("/login/otp").data)

    def state() -> tuple[Any, ...]:
        with app.app_context():
            factor = db.get_session().scalar(select(TotpFactor))
            assert factor is not None
            logins = db.get_session().scalars(select(LoginSession.id)).all()
            return (factor.secret_encrypted, factor.last_used_step, len(logins))

    before = state()

    @Fuzz(25)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        baseline = {"csrf_token": token, "otp": "123456"}
        params = data.draw(mutated(baseline))
        send(browser, data.draw(st.sampled_from(["GET", "POST"])), "/login/otp", params)

    run()
    assert state() == before
