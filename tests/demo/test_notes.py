"""Notes, a confidential OIDC client, signing in and out through a real IdP over HTTP."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests

from tests.demo.conftest import DemoApp
from tests.demo.conftest import LiveIdp
from tests.demo.conftest import decode_id_token
from tests.demo.conftest import discovery
from tests.demo.conftest import hidden_fields
from tests.demo.conftest import sign_in
from tests.demo.conftest import stored_user

CONTINUE_LINK = re.compile(r'<a[^>]*\sid="continue"[^>]*\shref="([^"]+)"')
EMAIL_LINE = 'id="email">alice@example.com</strong>'


def test_sign_in_shows_the_user_and_the_claims(
    idp_server: LiveIdp, notes: DemoApp, browser: requests.Session
) -> None:
    page = sign_in(browser, notes)

    assert page.status_code == 200
    assert page.url == f"{notes.url}/"
    assert EMAIL_LINE in page.text
    assert '<h1 id="who">Alice Liddell</h1>' in page.text
    user = stored_user(notes, browser)
    assert user is not None
    claims = decode_id_token(idp_server, user["id_token"], audience=notes.client_id)
    assert claims["sub"] == user["sub"]
    assert claims["sid"] == user["sid"]
    for name in ("sub", "sid", "email"):
        assert f'<th scope="row">{name}</th><td>{claims[name]}</td>' in page.text
    assert user["userinfo"]["email"] == "alice@example.com"


def test_the_cookie_holds_only_a_random_key(notes: DemoApp, browser: requests.Session) -> None:
    sign_in(browser, notes)

    key = browser.cookies.get("notes_session")
    assert key is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key)
    assert stored_user(notes, browser) is not None
    cookie = next(cookie for cookie in browser.cookies if cookie.name == "notes_session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_a_first_visit_asks_the_idp_without_showing_a_form(
    idp_server: LiveIdp, notes: DemoApp, browser: requests.Session
) -> None:
    page = browser.get(f"{notes.url}/", timeout=30)

    assert page.url == f"{notes.url}/"
    assert 'href="/login">Log in</a>' in page.text
    authorize = [r.url for r in page.history if r.url.startswith(f"{idp_server.url}/authorize")]
    assert len(authorize) == 1
    assert parse_qs(urlsplit(authorize[0]).query)["prompt"] == ["none"]
    assert stored_user(notes, browser) is None
    again = browser.get(f"{notes.url}/", timeout=30)
    assert again.history == []


def test_a_callback_with_a_forged_state_signs_nobody_in(
    idp_server: LiveIdp, notes: DemoApp, browser: requests.Session
) -> None:
    browser.get(f"{notes.url}/", timeout=30)

    page = browser.get(
        f"{notes.url}/callback",
        params={"code": "forged", "state": "forged", "iss": idp_server.url},
        timeout=30,
    )

    assert page.status_code == 400
    assert "Sign-in failed" in page.text
    assert stored_user(notes, browser) is None


def intercept_callback(browser: requests.Session, app: DemoApp) -> str:
    """Sign in at the IdP but stop at the redirect back to the app; return that URL."""
    form = browser.get(f"{app.url}/login", timeout=30)
    action = f"{urlsplit(form.url).scheme}://{urlsplit(form.url).netloc}/login"
    fields = {
        **hidden_fields(form.text),
        "username": "alice@example.com",
        "password": "alice-test-password",
    }
    response = browser.post(action, data=fields, allow_redirects=False, timeout=30)
    location = urljoin(action, response.headers["Location"])
    while not location.startswith(f"{app.url}/callback"):
        response = browser.get(location, allow_redirects=False, timeout=30)
        location = urljoin(location, response.headers["Location"])
    return location


def test_a_response_from_another_issuer_is_refused(
    idp_server: LiveIdp, notes: DemoApp, browser: requests.Session
) -> None:
    callback = intercept_callback(browser, notes)
    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [idp_server.url]

    forged = browser.get(
        f"{notes.url}/callback",
        params={"code": query["code"][0], "state": query["state"][0], "iss": "https://evil.test"},
        timeout=30,
    )

    assert forged.status_code == 400
    assert "another issuer" in forged.text
    assert stored_user(notes, browser) is None
    # The genuine response still works: the refusal consumed nothing.
    genuine = browser.get(callback, timeout=30)
    assert EMAIL_LINE in genuine.text


def test_log_out_needs_the_form_token(notes: DemoApp, browser: requests.Session) -> None:
    sign_in(browser, notes)

    refused = browser.post(f"{notes.url}/logout", data={"csrf_token": "x"}, timeout=30)

    assert refused.status_code == 400
    assert stored_user(notes, browser) is not None
    assert EMAIL_LINE in browser.get(f"{notes.url}/", timeout=30).text


def test_log_out_starts_rp_initiated_logout_at_the_idp(
    idp_server: LiveIdp, notes: DemoApp, browser: requests.Session
) -> None:
    page = sign_in(browser, notes)
    user = stored_user(notes, browser)
    assert user is not None
    old_key = browser.cookies.get("notes_session")

    response = browser.post(
        f"{notes.url}/logout",
        data={"csrf_token": hidden_fields(page.text)["csrf_token"]},
        allow_redirects=False,
        timeout=30,
    )

    # RP-Initiated Logout 1.0 §2: to the end_session_endpoint the discovery document names.
    end_session = discovery(idp_server).get("end_session_endpoint")
    assert end_session, "the IdP publishes no end_session_endpoint yet"
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.split("?")[0] == end_session
    query = parse_qs(urlsplit(location).query)
    assert query["id_token_hint"] == [user["id_token"]]
    assert query["post_logout_redirect_uri"] == [f"{notes.url}/"]
    assert query["client_id"] == [notes.client_id]
    assert query["state"][0]
    assert notes.store.load(old_key) is None

    landing = follow_logged_out_page(browser, browser.get(location, timeout=30))

    assert landing.url.startswith(f"{notes.url}/")
    assert "signed out of the identity provider" in landing.text
    # The IdP's session is over too: the next sign-in asks for the password.
    assert 'name="password"' in browser.get(f"{notes.url}/login", timeout=30).text


def follow_logged_out_page(browser: requests.Session, page: requests.Response) -> requests.Response:
    """Leave the IdP's logged-out page by its Continue link, as its script does in a browser."""
    match = CONTINUE_LINK.search(page.text)
    if match is None:
        return page
    return browser.get(unescape(match.group(1)), timeout=30)
