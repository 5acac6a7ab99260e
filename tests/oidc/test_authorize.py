"""The authorization endpoint (RFC 6749 §4.1, OIDC Core §3.1.2): requests, PKCE, redirect URIs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.models.oidc import AuthorizationCode
from idp.models.oidc import OAuthToken
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.rows import count

ISSUER = "http://idp.test"


def assert_html_error(response: Any, error: str) -> None:
    """A refused client or redirect_uri: an HTML page at the IdP, never a redirect."""
    assert response.status_code == 400, response.data[:300]
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert error.encode() in response.data


def assert_redirected_error(response: Any, error: str, state: str | None = "state-123") -> dict:
    assert response.status_code == 302, response.data[:300]
    location = response.headers["Location"]
    assert location.startswith(oidc.REDIRECT_URI + "?")
    query = oidc.query_of(location)
    assert query["error"] == error
    assert query["iss"] == ISSUER
    assert query.get("state") == state
    assert "code" not in query
    return query


def test_code_response_echoes_state_and_names_the_issuer(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    _, challenge = oidc.pkce_pair()
    response = oidc.authorize(http, client, code_challenge=challenge, code_challenge_method="S256")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    query = oidc.query_of(location)
    assert query["state"] == "state-123"
    assert query["iss"] == ISSUER  # RFC 9207
    assert len(query["code"]) >= 32
    assert count(app, AuthorizationCode) == 1


def test_nonce_is_carried_into_the_id_token(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http, client, nonce="n-0S6_WzA2Mj", code_challenge=challenge, code_challenge_method="S256"
    )
    body = oidc.exchange(http, client, code, code_verifier=verifier).get_json()
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["nonce"] == "n-0S6_WzA2Mj"


def test_reused_nonce_is_refused_for_the_same_client(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    other = oidc.register(app, "Wiki")
    oidc.get_code(http, client, nonce="once")
    response = oidc.authorize(http, client, nonce="once")
    assert_redirected_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 1
    # A nonce is scoped to its client: another client may use the same value.
    oidc.get_code(http, other, nonce="once")
    assert count(app, AuthorizationCode) == 2


def test_public_client_must_use_pkce(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    response = oidc.authorize(http, client)
    query = assert_redirected_error(response, "invalid_request")
    assert "code_challenge" in query["error_description"]
    assert count(app, AuthorizationCode) == 0


def test_public_client_with_s256_gets_tokens_without_a_secret(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    assert client.client_secret is None
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    oidc.decode(http, response.get_json()["id_token"], audience=client.client_id)


def test_confidential_client_may_skip_pkce(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    code = oidc.get_code(http, client)
    response = oidc.exchange(http, client, code)
    assert response.status_code == 200, response.data
    assert "id_token" in response.get_json()


def test_plain_code_challenge_method_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    verifier, _ = oidc.pkce_pair()
    response = oidc.authorize(http, client, code_challenge=verifier, code_challenge_method="plain")
    assert_redirected_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


@pytest.mark.parametrize("public", [True, False], ids=["public", "confidential"])
def test_pkce_code_needs_its_verifier_at_the_token_endpoint(
    app: Flask, http: FlaskClient, logged_in: TestUser, public: bool
) -> None:
    options = {"token_endpoint_auth_method": "none"} if public else {}
    client = oidc.register(app, **options)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    missing = oidc.exchange(http, client, code)
    assert missing.status_code == 400
    assert missing.get_json()["error"] == "invalid_request"
    wrong = oidc.exchange(http, client, code, code_verifier=oidc.pkce_pair()[0])
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == "invalid_grant"
    assert count(app, OAuthToken) == 0
    # The failures did not spend the code: the right verifier still works.
    assert oidc.exchange(http, client, code, code_verifier=verifier).status_code == 200


def test_code_verifier_without_a_challenge_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # RFC 9700 §4.8.2: a code_verifier for a code issued without code_challenge is refused.
    client = oidc.register(app)
    code = oidc.get_code(http, client)
    response = oidc.exchange(http, client, code, code_verifier=oidc.pkce_pair()[0])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert count(app, OAuthToken) == 0


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "no-such-client"},
        {"client_id": None},
        {"client_id": ""},
    ],
    ids=["unknown", "missing", "empty"],
)
def test_unknown_or_missing_client_is_shown_an_error_page(
    app: Flask, http: FlaskClient, logged_in: TestUser, params: dict[str, Any]
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, **params)
    assert_html_error(response, "invalid_client")
    assert count(app, AuthorizationCode) == 0


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://rp.example.com/callback/",
        "https://RP.example.com/callback",
        "https://rp.example.com/Callback",
        "https://rp.example.com/callback?extra=1",
        "https://rp.example.com:8443/callback",
        "http://rp.example.com/callback",
        "https://rp.example.com/callback#fragment",
        "https://evil.example/callback",
        "javascript:alert(document.domain)//https://rp.example.com/callback",
        "javascript://rp.example.com/callback",
        "https://rp.example.com/callb\u00e4ck",
        'https://rp.example.com/callback"',
        "https://rp.example.com/callback\\",
        "https://rp.example.com/callback\r\nX: 1",
        "https://rp.example.com/" + "x" * 5000,
    ],
)
def test_redirect_uri_must_match_exactly(
    app: Flask, http: FlaskClient, logged_in: TestUser, redirect_uri: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, redirect_uri=redirect_uri)
    assert_html_error(response, "invalid_request")
    assert b"evil.example/callback?" not in response.data
    assert count(app, AuthorizationCode) == 0


def test_redirect_uri_may_be_omitted_when_only_one_is_registered(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, redirect_uri=None)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(client.redirect_uri + "?code=")


def test_redirect_uri_is_required_when_several_are_registered(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, redirect_uris=[oidc.REDIRECT_URI, "https://rp.example.com/other"])
    response = oidc.authorize(http, client, redirect_uri=None)
    assert_html_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


def test_bad_redirect_uri_is_refused_before_login(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, redirect_uri="https://evil.example/callback")
    assert_html_error(response, "invalid_request")


def test_unsupported_response_type_is_redirected(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    for response_type in (
        "token",
        "id_token",
        "code token",
        "code id_token",
        "c\u00f6de",
        'code"',
        "code\\",
        "code\r\nSet-Cookie: x=1",
        "x" * 5000,
    ):
        response = oidc.authorize(http, client, response_type=response_type)
        assert_redirected_error(response, "unsupported_response_type")
    assert count(app, AuthorizationCode) == 0


def test_unsupported_response_type_with_a_bad_redirect_uri_is_not_redirected(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # RFC 6749 §4.1.2.1: the redirect_uri is the first problem, and it is not redirected to.
    client = oidc.register(app)
    response = oidc.authorize(
        http, client, response_type="token", redirect_uri="https://evil.example/cb"
    )
    assert_html_error(response, "invalid_request")
    assert b"redirect_uri" in response.data
    assert b"response_type" not in response.data


@pytest.mark.parametrize(
    ("query", "error", "problem"),
    [
        ({"client_id": "nope"}, "invalid_client", "The client does not exist on this server."),
        (
            {"client_id": "nope", "response_type": "token"},
            "invalid_client",
            "The client does not exist on this server.",
        ),
        ({}, "invalid_client", "Missing &#39;client_id&#39; parameter."),
        ({"response_type": "code"}, "invalid_client", "Missing &#39;client_id&#39; parameter."),
        (
            {"client_id": "nope", "redirect_uri": "https://evil.example/cb"},
            "invalid_client",
            "The client does not exist on this server.",
        ),
        ({"client_id": ["a", "b"]}, "invalid_request", "Multiple &#39;client_id&#39;"),
    ],
    ids=["unknown", "unknown-token", "nothing", "no-client", "unknown-evil-uri", "two-clients"],
)
def test_the_client_is_named_before_the_response_type(
    app: Flask, http: FlaskClient, query: dict[str, Any], error: str, problem: str
) -> None:
    # RFC 6749 §4.1.2.1: without a valid client there is no redirect_uri to trust: an HTML 400
    # naming the client, not a complaint about a parameter the request never got to.
    response = http.get("/authorize", query_string=query)
    assert_html_error(response, error)
    assert problem.encode() in response.data
    assert b"response_type" not in response.data
    assert count(app, AuthorizationCode) == 0


@pytest.mark.parametrize("missing", [{}, {"response_type": ""}], ids=["absent", "empty"])
def test_a_missing_response_type_is_redirected_as_missing(
    app: Flask, http: FlaskClient, logged_in: TestUser, missing: dict[str, str]
) -> None:
    # OIDC Core §3.1.2.1: "Parameters sent without a value MUST be treated as if they were
    # omitted". The client and redirect_uri are valid, so the error goes back to the client.
    client = oidc.register(app)
    query_string = {"client_id": client.client_id, "state": "state-123", **missing}
    response = http.get("/authorize", query_string=query_string)
    query = assert_redirected_error(response, "invalid_request")
    assert query["error_description"] == "Missing 'response_type' parameter."
    assert count(app, AuthorizationCode) == 0


def _query(client: oidc.Client, *pairs: tuple[str, str]) -> str:
    base = [
        ("response_type", "code"),
        ("redirect_uri", client.redirect_uri),
        ("scope", "openid"),
    ]
    return "/authorize?" + urlencode(base + list(pairs))


@pytest.mark.parametrize(
    "extra",
    [
        [("state", "a"), ("state", "b")],
        [("client_id", "other")],
        [("redirect_uri", "https://evil.example/callback")],
        [("response_type", "code")],
        [("scope", "openid email")],
    ],
    ids=["state", "client_id", "redirect_uri", "response_type", "scope"],
)
def test_duplicated_parameter_is_an_error_page(
    app: Flask, http: FlaskClient, logged_in: TestUser, extra: list[tuple[str, str]]
) -> None:
    # RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    client = oidc.register(app)
    oidc.register(app, "Wiki", client_id="other")
    response = http.get(_query(client, ("client_id", client.client_id), *extra))
    assert_html_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


@pytest.mark.parametrize("name", ["state", "nonce", "scope", "login_hint", "acr_values", "claims"])
def test_oversized_parameter_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, name: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, **{name: "x" * 5000})
    assert response.status_code == 302, response.data[:300]
    query = oidc.query_of(response.headers["Location"])
    assert query["error"] == "invalid_request"
    assert len(response.headers["Location"]) < 2048
    assert count(app, AuthorizationCode) == 0


@pytest.mark.parametrize("name", ["x", "n\u00e4me", 'a"b', "y" * 5000])
def test_oversized_unknown_parameter_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, name: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, **{name: "v" * 5000})
    query = assert_redirected_error(response, "invalid_request")
    assert query["error_description"].isascii()
    assert count(app, AuthorizationCode) == 0


def test_nonce_longer_than_stored_is_refused_not_crashing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, nonce="n" * 1000)
    assert_redirected_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


def test_unknown_scopes_are_dropped(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app)
    code = oidc.get_code(http, client, scope="openid email frobnicate admin:all")
    body = oidc.exchange(http, client, code).get_json()
    assert body["scope"].split() == ["openid", "email"]
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["email"] == logged_in.email


def test_acr_values_are_accepted_and_acr_is_reported(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    code = oidc.get_code(http, client, acr_values="urn:example:loa:2 1")
    body = oidc.exchange(http, client, code).get_json()
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["acr"] == "1"


def test_not_logged_in_goes_to_login_and_comes_back_for_the_code(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login"
    next_url = oidc.query_of(response.headers["Location"])["next"]
    assert next_url.startswith("/authorize?")
    assert count(app, AuthorizationCode) == 0
    login = auth.login(user.email, user.password, next_url=next_url)
    assert login.status_code == 302
    assert login.headers["Location"] == next_url
    back = http.get(next_url)
    assert back.status_code == 302
    query = oidc.query_of(back.headers["Location"])
    assert query["state"] == "state-123" and "code" in query
    body = oidc.exchange(http, client, query["code"]).get_json()
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["nonce"] == "nonce-456"


# RFC 8252 §7.3: loopback redirects for native apps may use any port.


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback"),
        ("http://[::1]/callback", "http://[::1]:51234/callback"),
        ("http://127.0.0.1:8080/callback", "http://127.0.0.1:51234/callback"),
        ("http://127.0.0.1:8080/callback", "http://127.0.0.1/callback"),
    ],
)
def test_native_client_on_loopback_may_use_any_port(
    app: Flask, http: FlaskClient, logged_in: TestUser, registered: str, requested: str
) -> None:
    client = oidc.register(
        app, "Desktop", token_endpoint_auth_method="none", redirect_uris=[registered]
    )
    client.redirect_uri = requested
    verifier, challenge = oidc.pkce_pair()
    response = oidc.authorize(http, client, code_challenge=challenge, code_challenge_method="S256")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"{requested}?code=")
    code = oidc.query_of(response.headers["Location"])["code"]
    assert oidc.exchange(http, client, code, code_verifier=verifier).status_code == 200


@pytest.mark.parametrize(
    ("registered", "requested", "options"),
    [
        ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback", {}),
        ("http://localhost/callback", "http://localhost:51234/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51234/other", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.1:51234/callback?x=1", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.2:51234/callback", {"public": True}),
        ("http://127.0.0.1/callback", "https://127.0.0.1:51234/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.1:99999/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.1:x/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://127.0.0.1:\u0665/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://user@127.0.0.1:5/callback", {"public": True}),
        ("http://127.0.0.1/callback", "HTTP://127.0.0.1:5/callback", {"public": True}),
        ("http://127.0.0.1/callback", "http://[::1]:5/callback", {"public": True}),
    ],
    ids=[
        "confidential",
        "localhost-name",
        "other-path",
        "extra-query",
        "other-ip",
        "https",
        "bad-port",
        "non-numeric-port",
        "non-ascii-digit-port",
        "userinfo",
        "upper-scheme",
        "other-family",
    ],
)
def test_loopback_port_freedom_is_narrow(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    registered: str,
    requested: str,
    options: dict[str, bool],
) -> None:
    method = "none" if options.get("public") else "client_secret_basic"
    client = oidc.register(
        app, "Desktop", token_endpoint_auth_method=method, redirect_uris=[registered]
    )
    client.redirect_uri = requested
    _, challenge = oidc.pkce_pair()
    response = oidc.authorize(http, client, code_challenge=challenge, code_challenge_method="S256")
    assert_html_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


def test_loopback_redirect_uri_must_be_the_same_at_the_token_endpoint(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(
        app,
        "Desktop",
        token_endpoint_auth_method="none",
        redirect_uris=["http://127.0.0.1/callback"],
    )
    client.redirect_uri = "http://127.0.0.1:51234/callback"
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    client.redirect_uri = "http://127.0.0.1:51235/callback"
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert count(app, OAuthToken) == 0
