"""OpenID Connect RP-Initiated Logout 1.0 at /end_session: hint, confirmation, redirect."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.forms import csrf_token

LOGGED_OUT = "https://rp.example.com/logged-out"
OTHER_LOGGED_OUT = "https://wiki.example.com/bye"
CONTINUE = re.compile(r'<a class="button" id="continue" href="([^"]+)">Continue</a>')
SCRIPT_TARGET = re.compile(r"var target = (.*);")


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


@pytest.fixture
def notes(app: Flask, receiver: rx.Receiver) -> oidc.Client:
    return oidc.register(
        app,
        "Notes",
        post_logout_redirect_uris=[LOGGED_OUT],
        backchannel_logout_uri=receiver.endpoint(),
    )


@pytest.fixture
def tokens(http: FlaskClient, logged_in: TestUser, notes: oidc.Client) -> dict[str, Any]:
    return rx.sign_in_to(http, notes)


def end_session(http: FlaskClient, method: str = "GET", **params: str) -> Any:
    if method == "GET":
        return http.get("/end_session", query_string=params)
    return http.post("/end_session", data=params)


def redirect_target(page: Any) -> str | None:
    """Return where the answer sends the browser: a 303's Location, or the page's link.

    The logged-out page's script must agree with its Continue link (no-JS path).
    """
    if page.status_code == 303:
        return str(page.headers["Location"])
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    link = CONTINUE.search(text)
    script = SCRIPT_TARGET.search(text)
    if link is None:
        assert script is None or json.loads(script.group(1)) == ""
        return None
    target = html.unescape(link.group(1))
    assert script is not None and json.loads(script.group(1)) == target
    return target


def assert_alive(
    app: Flask,
    http: FlaskClient,
    client: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    """Nothing ended: the browser, the session row, its tokens, no logout sent."""
    assert http.get("/").status_code == 200
    assert rx.login_row(app, tokens["claims"]["sid"]).revoked_at is None
    assert rx.audit_events(app, "session_revoked") == []
    assert rx.deliveries(app) == []
    assert receiver.received == []
    rx.assert_tokens_alive(http, client, tokens)


def assert_ended(
    app: Flask,
    http: FlaskClient,
    client: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    assert http.get("/").status_code == 302
    login = rx.login_row(app, tokens["claims"]["sid"])
    assert login.revoked_at is not None and login.revoked_reason == "rp_logout"
    assert len(receiver.received) == 1
    rx.assert_tokens_dead(http, client, tokens)


def assert_error_page(response: Any) -> None:
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_request" in response.get_data(as_text=True)


def test_discovery_names_the_end_session_endpoint(http: FlaskClient) -> None:
    metadata = http.get("/.well-known/openid-configuration").get_json()
    assert metadata["end_session_endpoint"] == "http://idp.test/end_session"
    assert metadata["frontchannel_logout_supported"] is True


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_valid_hint_logs_out_without_confirmation_and_redirects_with_state(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    clock: Clock,
    method: str,
) -> None:
    response = end_session(
        http,
        method,
        id_token_hint=tokens["id_token"],
        post_logout_redirect_uri=LOGGED_OUT,
        state="xyz 1&2",
    )

    # No front-channel page to load: a plain redirect (oidc-provider, Keycloak).
    assert response.status_code == 303
    assert response.get_data() == b""
    target = redirect_target(response)
    assert target is not None
    assert target.split("?")[0] == LOGGED_OUT
    assert parse_qs(urlsplit(target).query) == {"state": ["xyz 1&2"]}
    assert_ended(app, http, notes, tokens, receiver)
    claims = rx.verify_logout_token(http, receiver.tokens[0], notes, now=clock.now)
    assert claims["sid"] == tokens["claims"]["sid"]


def test_without_state_the_redirect_has_no_state(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    response = end_session(
        http, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT
    )
    assert redirect_target(response) == LOGGED_OUT
    assert_ended(app, http, notes, tokens, receiver)


def test_an_expired_hint_still_identifies_the_session(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    clock.advance(seconds=tokens["claims"]["exp"] - clock.now.timestamp() + 60)
    assert http.get("/").status_code == 200  # the session outlives its ID token

    response = end_session(
        http,
        id_token_hint=tokens["id_token"],
        post_logout_redirect_uri=LOGGED_OUT,
        state="s1",
    )

    assert response.status_code == 303
    assert redirect_target(response) == f"{LOGGED_OUT}?state=s1"
    assert_ended(app, http, notes, tokens, receiver)


def test_a_matching_client_id_is_accepted(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    response = end_session(
        http,
        id_token_hint=tokens["id_token"],
        client_id=notes.client_id,
        post_logout_redirect_uri=LOGGED_OUT,
    )
    assert redirect_target(response) == LOGGED_OUT
    assert_ended(app, http, notes, tokens, receiver)


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example.com/logged-out",
        LOGGED_OUT + "/",
        LOGGED_OUT + "?next=x",
        LOGGED_OUT.upper(),
        OTHER_LOGGED_OUT,  # registered, but by another client
    ],
)
def test_an_unregistered_post_logout_redirect_uri_gets_no_redirect(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    uri: str,
) -> None:
    oidc.register(app, "Wiki", post_logout_redirect_uris=[OTHER_LOGGED_OUT])
    response = end_session(
        http, id_token_hint=tokens["id_token"], post_logout_redirect_uri=uri, state="s"
    )
    assert response.status_code == 200
    assert redirect_target(response) is None
    text = response.get_data(as_text=True)
    assert "evil.example.com" not in text and "wiki.example.com" not in text
    assert "Location" not in response.headers
    assert_ended(app, http, notes, tokens, receiver)


def test_a_client_id_that_is_not_the_hint_audience_is_refused(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    wiki = oidc.register(app, "Wiki", post_logout_redirect_uris=[OTHER_LOGGED_OUT])
    response = end_session(
        http,
        id_token_hint=tokens["id_token"],
        client_id=wiki.client_id,
        post_logout_redirect_uri=OTHER_LOGGED_OUT,
    )
    assert_error_page(response)
    assert OTHER_LOGGED_OUT not in response.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)


def test_without_a_hint_the_user_is_asked_and_nothing_ends(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    response = end_session(
        http, client_id=notes.client_id, post_logout_redirect_uri=LOGGED_OUT, state="s"
    )

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'name="confirm"' in text and 'name="csrf_token"' in text
    assert 'action="/end_session"' in text and 'method="post"' in text
    assert "Notes" in text and logged_in.email in text
    assert_alive(app, http, notes, tokens, receiver)


def test_confirming_ends_the_session_but_does_not_redirect_without_a_hint(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    page = end_session(
        http, client_id=notes.client_id, post_logout_redirect_uri=LOGGED_OUT, state="s"
    )
    hidden = dict(
        re.findall(
            r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.get_data(as_text=True)
        )
    )
    assert hidden["client_id"] == notes.client_id
    assert hidden["post_logout_redirect_uri"] == LOGGED_OUT

    response = http.post("/end_session", data={**hidden, "confirm": "yes"})

    assert response.status_code == 200
    # RP-Initiated Logout §3: without a valid id_token_hint the OP cannot tell the request
    # came from the RP, so it does not redirect.
    assert redirect_target(response) is None
    assert_ended(app, http, notes, tokens, receiver)


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_confirming_without_the_csrf_token_is_refused(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    csrf: str | None,
) -> None:
    end_session(http, client_id=notes.client_id)  # the page exists, with its token
    form = {"client_id": notes.client_id, "confirm": "yes"}
    if csrf is not None:
        form["csrf_token"] = csrf
    response = http.post("/end_session", data=form)
    assert response.status_code == 400
    assert_alive(app, http, notes, tokens, receiver)


def test_a_post_without_confirm_only_asks(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    page = end_session(http, client_id=notes.client_id)
    response = http.post(
        "/end_session", data={"client_id": notes.client_id, "csrf_token": csrf_token(page.data)}
    )
    assert response.status_code == 200
    assert 'name="confirm"' in response.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)


def test_a_hint_from_another_session_ends_that_one_and_asks_about_this_one(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    other = app.test_client()
    assert AuthActions(other).login(logged_in.email, logged_in.password).status_code == 302
    other_tokens = rx.sign_in_to(other, notes)
    assert other_tokens["claims"]["sid"] != tokens["claims"]["sid"]

    response = end_session(
        http, id_token_hint=other_tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT
    )

    # The session the hint names ends (documented: with or without the browser's cookie) ...
    assert rx.login_row(app, other_tokens["claims"]["sid"]).revoked_reason == "rp_logout"
    assert other.get("/").status_code == 302
    rx.assert_tokens_dead(other, notes, other_tokens)
    assert len(receiver.received) == 1
    # ... this browser's own session is another one, which only the user may end.
    assert response.status_code == 200
    assert 'name="confirm"' in response.get_data(as_text=True)
    assert http.get("/").status_code == 200
    assert rx.login_row(app, tokens["claims"]["sid"]).revoked_at is None
    rx.assert_tokens_alive(http, notes, tokens)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_valid_hint_ends_its_session_without_the_cookie(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    method: str,
) -> None:
    """A cross-site POST arrives without the SameSite=Lax cookie: the hint alone suffices."""
    cookieless = app.test_client()
    response = end_session(
        cookieless,
        method,
        id_token_hint=tokens["id_token"],
        post_logout_redirect_uri=LOGGED_OUT,
        state="s",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"{LOGGED_OUT}?state=s"
    assert_ended(app, http, notes, tokens, receiver)


def test_a_cookieless_post_without_proof_looks_again_with_a_get(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    cookieless = app.test_client()
    params = {"client_id": notes.client_id, "post_logout_redirect_uri": LOGGED_OUT, "state": "s"}
    response = end_session(cookieless, "POST", **params)
    # Not "signed out": the same-site GET carries the cookie, if the browser has one.
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/end_session"
    assert {key: value[0] for key, value in parse_qs(location.query).items()} == params
    assert "signed out" not in response.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)
    # With the cookie the browser is asked; without one there is truly nothing to end.
    asked = http.get(response.headers["Location"])
    assert asked.status_code == 200 and 'name="confirm"' in asked.get_data(as_text=True)
    nothing = cookieless.get(response.headers["Location"])
    assert nothing.status_code == 200
    assert "You are signed out" in nothing.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)


def test_a_hint_for_an_ended_session_posted_without_cookie_looks_again(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    AuthActions(http).logout()
    cookieless = app.test_client()
    response = end_session(
        cookieless, "POST", id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT
    )
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == "/end_session"
    done = cookieless.get(response.headers["Location"])
    assert done.status_code == 303 and done.headers["Location"] == LOGGED_OUT
    assert len(receiver.received) == 1  # the logout that ended it, nothing more


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{payload}."


def _hostile_header(token: str) -> str:
    _, payload, signature = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","crit":1}').rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


BAD_HINTS = {
    "tampered": lambda tokens: _tampered(tokens["id_token"]),
    "unsigned": lambda tokens: _unsigned(tokens["id_token"]),
    "hostile_header": lambda tokens: _hostile_header(tokens["id_token"]),
    "access_token": lambda tokens: tokens["access_token"],
    "refresh_token": lambda tokens: tokens["refresh_token"],
    "garbage": lambda tokens: "not.a.jwt",
    "oversized": lambda tokens: "a" * 9000,
}


@pytest.mark.parametrize("kind", list(BAD_HINTS))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_hint_is_an_error_and_ends_nothing(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
    kind: str,
    method: str,
) -> None:
    response = end_session(
        http,
        method,
        id_token_hint=BAD_HINTS[kind](tokens),
        post_logout_redirect_uri=LOGGED_OUT,
        state="s",
    )
    assert_error_page(response)
    assert LOGGED_OUT not in response.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)


def test_a_logout_token_is_no_hint(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    """Logout tokens carry iss, aud and sid too, and are signed by the same keys."""
    other = app.test_client()
    assert AuthActions(other).login(logged_in.email, logged_in.password).status_code == 302
    rx.sign_in_to(other, notes)
    AuthActions(other).logout()
    (logout_token,) = receiver.tokens

    response = end_session(http, id_token_hint=logout_token, post_logout_redirect_uri=LOGGED_OUT)

    assert_error_page(response)
    assert http.get("/").status_code == 200
    assert rx.login_row(app, tokens["claims"]["sid"]).revoked_at is None
    assert len(receiver.received) == len(rx.deliveries(app)) == 1
    rx.assert_tokens_alive(http, notes, tokens)


def test_with_no_session_a_valid_hint_just_redirects(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    AuthActions(http).logout()
    assert len(receiver.received) == 1

    response = end_session(
        http, id_token_hint=tokens["id_token"], post_logout_redirect_uri=LOGGED_OUT, state="a"
    )

    assert response.status_code == 303
    assert redirect_target(response) == f"{LOGGED_OUT}?state=a"
    assert len(receiver.received) == 1  # nothing more to end
    assert len(rx.deliveries(app)) == 1


def test_with_no_session_and_no_hint_there_is_nothing_to_confirm(
    app: Flask, http: FlaskClient, notes: oidc.Client
) -> None:
    response = end_session(http, client_id=notes.client_id, post_logout_redirect_uri=LOGGED_OUT)
    assert response.status_code == 200
    assert 'name="confirm"' not in response.get_data(as_text=True)
    assert redirect_target(response) is None
    assert rx.deliveries(app) == []


def test_an_unknown_client_id_without_hint_only_asks(
    app: Flask,
    http: FlaskClient,
    notes: oidc.Client,
    tokens: dict[str, Any],
    receiver: rx.Receiver,
) -> None:
    response = end_session(http, client_id="no-such-client", post_logout_redirect_uri=LOGGED_OUT)
    assert response.status_code == 200
    assert 'name="confirm"' in response.get_data(as_text=True)
    assert_alive(app, http, notes, tokens, receiver)
