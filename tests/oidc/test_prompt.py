"""``prompt``, ``max_age`` and ``login_hint`` at the authorization endpoint (OIDC Core §3.1.2.1)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.login import LoginSession
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import Consent
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count

ISSUER = "http://idp.test"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
# The clock moves ahead of real time in these tests; PyJWT must accept that iat.
LEEWAY = 3600


def assert_redirected_error(response: Any, error: str) -> dict[str, str]:
    assert response.status_code == 302, response.data[:300]
    location = response.headers["Location"]
    assert location.startswith(oidc.REDIRECT_URI + "?"), location
    query = oidc.query_of(location)
    assert query["error"] == error
    assert query["state"] == "state-123"
    assert query["iss"] == ISSUER
    assert "code" not in query
    return query


def assert_login_page(response: Any, http: FlaskClient, *, force: bool) -> str:
    """Follow a redirect to /login; check the form is shown; return the login page URL."""
    assert response.status_code == 302, response.data[:300]
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    query = oidc.query_of(location)
    assert query.get("force") == ("1" if force else None)
    # The way back carries the mark of the login asked for, so that login satisfies it.
    assert oidc.query_of(query["next"])["fresh_login"]
    page = http.get(location)
    assert page.status_code == 200
    assert b'name="password"' in page.data
    return location


def submit_login(http: FlaskClient, login_url: str, user: TestUser) -> Any:
    """Fill in the login form found at ``login_url`` like a browser would."""
    page = http.get(login_url)
    form = {name: html.unescape(value) for name, value in HIDDEN.findall(page.data.decode())}
    form.update(username=user.email, password=user.password)
    return http.post("/login", data=form)


def id_token_of(http: FlaskClient, client: oidc.Client, code: str) -> dict[str, Any]:
    response = oidc.exchange(http, client, code)
    assert response.status_code == 200, response.data
    return oidc.decode(
        http, response.get_json()["id_token"], audience=client.client_id, leeway=LEEWAY
    )


def sessions_in(app: Flask) -> list[tuple[str, int]]:
    with app.app_context():
        rows = db.get_session().scalars(select(LoginSession).order_by(LoginSession.id))
        return [(row.sid, int(row.auth_time.timestamp())) for row in rows]


def test_prompt_none_without_a_session_is_login_required(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="none")
    assert_redirected_error(response, "login_required")
    assert count(app, AuthorizationCode) == 0
    assert count(app, LoginSession) == 0


def test_prompt_none_with_a_session_and_consent_gives_a_code(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="none")
    assert response.status_code == 302
    assert "code" in oidc.query_of(response.headers["Location"])


def test_prompt_none_without_consent_is_consent_required(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    response = oidc.authorize(http, client, prompt="none")
    assert_redirected_error(response, "consent_required")
    assert count(app, AuthorizationCode) == 0
    assert count(app, Consent) == 0


def test_prompt_none_with_a_stale_login_is_login_required(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    clock.advance(seconds=120)
    response = oidc.authorize(http, client, prompt="none", max_age="60")
    assert_redirected_error(response, "login_required")
    assert count(app, AuthorizationCode) == 0


def test_prompt_none_with_login_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="none login")
    assert_redirected_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


def test_prompt_login_forces_the_form_then_completes_in_the_same_session(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    first = id_token_of(http, client, oidc.get_code(http, client))
    [(sid, _)] = sessions_in(app)
    clock.advance(seconds=300)
    response = oidc.authorize(http, client, prompt="login", nonce="second")
    login_url = assert_login_page(response, http, force=True)
    assert count(app, AuthorizationCode) == 1  # the first one only
    back = submit_login(http, login_url, logged_in)
    assert back.status_code == 302
    assert urlsplit(back.headers["Location"]).path == "/authorize"
    done = http.get(back.headers["Location"])
    assert done.status_code == 302, done.data[:300]
    query = oidc.query_of(done.headers["Location"])
    assert query["state"] == "state-123"
    second = id_token_of(http, client, query["code"])
    assert second["sid"] == first["sid"] == sid
    assert second["auth_time"] == int(clock.now.timestamp())
    assert second["auth_time"] == first["auth_time"] + 300
    assert sessions_in(app) == [(sid, second["auth_time"])]


def test_prompt_login_without_a_session_shows_the_form_once(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="login")
    login_url = assert_login_page(response, http, force=False)
    back = submit_login(http, login_url, user)
    done = http.get(back.headers["Location"])
    assert done.status_code == 302
    assert "code" in oidc.query_of(done.headers["Location"])


def test_prompt_login_with_wrong_password_keeps_the_old_auth_time(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    before = sessions_in(app)
    clock.advance(seconds=300)
    login_url = assert_login_page(oidc.authorize(http, client, prompt="login"), http, force=True)
    wrong = TestUser(logged_in.id, logged_in.email, "not the password", logged_in.name)
    assert submit_login(http, login_url, wrong).status_code == 401
    assert sessions_in(app) == before
    assert count(app, AuthorizationCode) == 0


def test_prompt_consent_shows_the_page_even_for_trusted_clients(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=True)
    response = oidc.authorize(http, client, prompt="consent")
    assert response.status_code == 200
    assert b'name="decision"' in response.data
    assert count(app, AuthorizationCode) == 0
    allowed = http.post(
        response.request.full_path,
        data={"csrf_token": csrf_token(response.data), "decision": "allow"},
    )
    assert allowed.status_code == 302
    assert "code" in oidc.query_of(allowed.headers["Location"])


def test_prompt_consent_with_none_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="none consent")
    assert_redirected_error(response, "invalid_request")


def test_max_age_exceeded_forces_login_and_refreshes_auth_time(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    [(sid, auth_time)] = sessions_in(app)
    clock.advance(seconds=120)
    response = oidc.authorize(http, client, max_age="60")
    login_url = assert_login_page(response, http, force=True)
    assert oidc.query_of(oidc.query_of(login_url)["next"])["max_age"] == "60"
    assert count(app, AuthorizationCode) == 0
    back = submit_login(http, login_url, logged_in)
    done = http.get(back.headers["Location"])
    assert done.status_code == 302, done.data[:300]
    claims = id_token_of(http, client, oidc.query_of(done.headers["Location"])["code"])
    assert claims["auth_time"] == int(clock.now.timestamp()) == auth_time + 120
    assert claims["sid"] == sid


def test_max_age_not_exceeded_needs_no_login(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    [(_, auth_time)] = sessions_in(app)
    clock.advance(seconds=30)
    code = oidc.get_code(http, client, max_age="60")
    claims = id_token_of(http, client, code)
    assert claims["auth_time"] == auth_time  # OIDC Core §3.1.2.1: REQUIRED with max_age


@pytest.mark.parametrize(
    "max_age", ["abc", "-1", "1.5", " 5", "99999999999", "\u0665", "\u00b2", "0x10"]
)
def test_malformed_max_age_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, max_age: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, max_age=max_age)
    assert_redirected_error(response, "invalid_request")
    assert count(app, AuthorizationCode) == 0


def test_empty_max_age_is_treated_as_omitted(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    # OIDC Core §3.1.2.1: "Parameters sent without a value MUST be treated as if they were
    # omitted from the request."
    client = oidc.register(app)
    clock.advance(seconds=120)
    response = oidc.authorize(http, client, max_age="", prompt="")
    assert response.status_code == 302
    assert "code" in oidc.query_of(response.headers["Location"])


def test_max_age_zero_forces_login_once(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    clock.advance(seconds=1)
    login_url = assert_login_page(oidc.authorize(http, client, max_age="0"), http, force=True)
    back = submit_login(http, login_url, logged_in)
    done = http.get(back.headers["Location"])
    assert done.status_code == 302, done.data[:300]
    claims = id_token_of(http, client, oidc.query_of(done.headers["Location"])["code"])
    assert claims["auth_time"] == int(clock.now.timestamp())


def test_malformed_max_age_without_a_session_is_invalid_request(
    app: Flask, http: FlaskClient
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, max_age="soon")
    assert_redirected_error(response, "invalid_request")


def test_login_hint_prefills_the_username(app: Flask, http: FlaskClient, user: TestUser) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, login_hint='bob"<b>@example.com')
    assert response.status_code == 302
    assert oidc.query_of(response.headers["Location"])["login_hint"] == 'bob"<b>@example.com'
    page = http.get(response.headers["Location"])
    assert b'value="bob&#34;&lt;b&gt;@example.com"' in page.data
    assert b"<b>@" not in page.data


def follow_to_code(http: FlaskClient, response: Any) -> str:
    """Follow redirects inside the IdP until the redirect to the client; return its code."""
    for _ in range(5):
        assert response.status_code == 302, response.data[:300]
        location = response.headers["Location"]
        if location.startswith(oidc.REDIRECT_URI):
            return oidc.query_of(location)["code"]
        assert urlsplit(location).path != "/login", "sent back to the login page"
        response = http.get(location)
    raise AssertionError("no code after five redirects")


@pytest.mark.parametrize("max_age", ["0", "1"])
def test_max_age_shorter_than_the_login_is_satisfied_by_that_login(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock, max_age: str
) -> None:
    # OIDC Core §3.1.2.1: a login done for this very request satisfies max_age, however long
    # the user took to type the password. Before, /authorize sent them back to /login forever.
    client = oidc.register(app)
    [(sid, _)] = sessions_in(app)
    clock.advance(seconds=60)
    login_url = assert_login_page(oidc.authorize(http, client, max_age=max_age), http, force=True)
    clock.advance(seconds=10)  # the user types the password
    back = submit_login(http, login_url, logged_in)
    clock.advance(seconds=2)  # a slow way back to /authorize
    code = follow_to_code(http, back)
    claims = id_token_of(http, client, code)
    assert claims["auth_time"] == int(clock.now.timestamp()) - 2
    assert claims["sid"] == sid


def test_max_age_zero_without_a_session_needs_one_login(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    login_url = assert_login_page(oidc.authorize(http, client, max_age="0"), http, force=False)
    clock.advance(seconds=7)
    back = submit_login(http, login_url, user)
    clock.advance(seconds=1)
    claims = id_token_of(http, client, follow_to_code(http, back))
    assert claims["auth_time"] == int(clock.now.timestamp()) - 1


@pytest.mark.parametrize("params", [{"max_age": "0"}, {"prompt": "login"}])
def test_the_fresh_login_mark_is_spent_once(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock, params: dict[str, str]
) -> None:
    client = oidc.register(app)
    clock.advance(seconds=60)
    # No nonce: a reused nonce would be refused anyway, before the mark is looked at.
    response = oidc.authorize(http, client, nonce=None, **params)  # type: ignore[arg-type]
    login_url = assert_login_page(response, http, force=True)
    back = submit_login(http, login_url, logged_in)
    follow_to_code(http, back)
    codes = count(app, AuthorizationCode)
    clock.advance(seconds=5)
    # The same URL again (the Back button, a copied link) asks for a new login.
    again = http.get(back.headers["Location"])
    assert_login_page(again, http, force=True)
    assert count(app, AuthorizationCode) == codes


@pytest.mark.parametrize("params", [{"max_age": "0"}, {"prompt": "login"}])
def test_the_fresh_login_mark_is_bound_to_its_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock, params: dict[str, str]
) -> None:
    client = oidc.register(app)
    clock.advance(seconds=60)
    login_url = assert_login_page(oidc.authorize(http, client, **params), http, force=True)
    back = submit_login(http, login_url, logged_in)
    marked = oidc.query_of(back.headers["Location"])
    clock.advance(seconds=5)
    # The mark moved onto another request (another state) does not satisfy it.
    moved = oidc.authorize(http, client, **{**marked, "state": "other-state"})
    assert_login_page(moved, http, force=True)
    assert count(app, AuthorizationCode) == 0


def test_prompt_login_cannot_be_skipped_by_going_straight_back(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    clock.advance(seconds=60)
    response = oidc.authorize(http, client, prompt="login")
    login_url = assert_login_page(response, http, force=True)
    skipped = http.get(oidc.query_of(login_url)["next"])  # no password typed
    assert_login_page(skipped, http, force=True)
    assert count(app, AuthorizationCode) == 0


def test_a_fresh_login_carries_through_the_consent_page(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app, is_trusted=False)
    clock.advance(seconds=60)
    login_url = assert_login_page(oidc.authorize(http, client, max_age="0"), http, force=True)
    back = submit_login(http, login_url, logged_in)
    clock.advance(seconds=3)
    page = http.get(back.headers["Location"])
    assert page.status_code == 200 and b'name="decision"' in page.data
    clock.advance(seconds=3)  # reading the consent page
    action = html.unescape(re.search(r'action="([^"]+)"', page.data.decode())[1])  # type: ignore[index]
    allowed = http.post(action, data={"csrf_token": csrf_token(page.data), "decision": "allow"})
    claims = id_token_of(http, client, follow_to_code(http, allowed))
    assert claims["auth_time"] == int(clock.now.timestamp()) - 6


def test_prompt_none_by_post_without_the_cookie_looks_again_with_a_get(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    """A cross-site POST carries no SameSite=Lax cookie: no login_required for a logged-in user."""
    client = oidc.register(app)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid",
        "state": "state-123",
        "prompt": "none",
        "response_mode": "form_post",
    }
    hop = app.test_client().post("/authorize", data=params)
    assert hop.status_code == 303
    location = urlsplit(hop.headers["Location"])
    assert location.path == "/authorize"
    assert oidc.query_of(hop.headers["Location"]) == params
    assert count(app, AuthorizationCode) == 0
    # The same-site GET carries the cookie: the code, posted back to the client.
    done = http.get(hop.headers["Location"])
    assert done.status_code == 200
    fields = dict(HIDDEN.findall(done.data.decode()))
    assert fields["state"] == "state-123" and fields["code"]
    # No cookie at all: login_required, after the hop.
    cookieless = app.test_client()
    refused = cookieless.get(cookieless.post("/authorize", data=params).headers["Location"])
    assert dict(HIDDEN.findall(refused.data.decode()))["error"] == "login_required"
