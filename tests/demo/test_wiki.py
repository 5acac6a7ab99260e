"""Wiki, a public OIDC client with PKCE, and single sign-on across Notes and Wiki."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import requests

from tests.demo.conftest import DemoApp
from tests.demo.conftest import LiveIdp
from tests.demo.conftest import decode_id_token
from tests.demo.conftest import sign_in
from tests.demo.conftest import stored_user

EMAIL_LINE = 'id="email">alice@example.com</strong>'


def test_a_public_client_signs_in_with_pkce_and_no_secret(
    idp_server: LiveIdp, wiki: DemoApp, browser: requests.Session
) -> None:
    page = sign_in(browser, wiki)

    assert page.url == f"{wiki.url}/"
    assert EMAIL_LINE in page.text
    assert "public client with PKCE" in page.text
    authorize = next(
        parse_qs(urlsplit(hop.url).query)
        for hop in page.history
        if hop.url.startswith(f"{idp_server.url}/authorize")
    )
    assert authorize["code_challenge_method"] == ["S256"]
    assert len(authorize["code_challenge"][0]) == 43
    assert authorize["client_id"] == [wiki.client_id]
    user = stored_user(wiki, browser)
    assert user is not None
    claims = decode_id_token(idp_server, user["id_token"], audience=wiki.client_id)
    assert claims["sub"] == user["sub"]
    assert {cookie.name for cookie in browser.cookies} == {"idp_session", "wiki_session"}


def test_signed_in_at_notes_means_signed_in_at_wiki_without_a_form(
    notes: DemoApp, wiki: DemoApp, browser: requests.Session
) -> None:
    sign_in(browser, notes)

    page = browser.get(f"{wiki.url}/", timeout=30)

    assert page.url == f"{wiki.url}/"
    assert EMAIL_LINE in page.text
    assert all('name="password"' not in hop.text for hop in page.history)
    at_notes, at_wiki = stored_user(notes, browser), stored_user(wiki, browser)
    assert at_notes is not None and at_wiki is not None
    # One login session at the IdP: the same sid in both apps' ID tokens.
    assert at_wiki["sid"] == at_notes["sid"]
    names = {cookie.name for cookie in browser.cookies}
    assert {"idp_session", "notes_session", "wiki_session"} <= names


def test_each_app_keeps_its_own_cookie(
    notes: DemoApp, wiki: DemoApp, browser: requests.Session
) -> None:
    sign_in(browser, notes)
    notes_key = browser.cookies.get("notes_session")

    browser.get(f"{wiki.url}/", timeout=30)

    assert browser.cookies.get("notes_session") == notes_key
    assert EMAIL_LINE in browser.get(f"{notes.url}/", timeout=30).text


def test_the_page_links_the_other_apps(wiki: DemoApp, browser: requests.Session) -> None:
    page = browser.get(f"{wiki.url}/", timeout=30)

    for name in ("Notes", "Wiki", "Payroll"):
        assert f">{name}</a>" in page.text
    assert f'<a href="{wiki.url}/" aria-current="page">Wiki</a>' in page.text
    assert 'href="/static/demo.css"' in page.text
    assert "https://" not in page.text
    stylesheet = browser.get(f"{wiki.url}/static/demo.css", timeout=30)
    assert stylesheet.status_code == 200
    assert "@import" not in stylesheet.text and "url(" not in stylesheet.text
