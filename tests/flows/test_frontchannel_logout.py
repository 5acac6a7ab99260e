"""Front-Channel Logout 1.0: hidden iframes on the IdP's logged-out page, then the redirect."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.forms import csrf_token

NOTES_FC = "https://notes.example.com/frontchannel"
WIKI_FC = "https://wiki.example.com/fc?tenant=7"
LOGGED_OUT = "https://notes.example.com/bye"


class Frames(HTMLParser):
    """Collect every iframe of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "iframe":
            self.frames.append(dict(attrs))


def iframes(page: Any) -> list[dict[str, str | None]]:
    parser = Frames()
    parser.feed(page.get_data(as_text=True))
    return parser.frames


def framed_urls(page: Any) -> list[str]:
    frames = iframes(page)
    for frame in frames:
        assert "hidden" in frame
        assert frame.get("class") == "frontchannel"
    return [str(frame["src"]) for frame in frames]


def logout_form(http: FlaskClient) -> Any:
    response = AuthActions(http).logout()
    assert response.status_code == 200
    return response


def test_a_joined_client_is_framed_with_iss_and_sid(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    tokens = rx.sign_in_to(http, notes)

    page = logout_form(http)

    (url,) = framed_urls(page)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == NOTES_FC
    assert parse_qs(parts.query) == {"iss": ["http://idp.test"], "sid": [tokens["claims"]["sid"]]}
    assert http.get("/").status_code == 302
    rx.assert_tokens_dead(http, notes, tokens)


def test_a_registered_query_is_kept(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    wiki = oidc.register(app, "Wiki", frontchannel_logout_uri=WIKI_FC)
    tokens = rx.sign_in_to(http, wiki)

    (url,) = framed_urls(logout_form(http))

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == WIKI_FC.split("?")[0]
    assert parse_qs(parts.query) == {
        "tenant": ["7"],
        "iss": ["http://idp.test"],
        "sid": [tokens["claims"]["sid"]],
    }


def test_every_joined_client_is_framed_and_only_those(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    wiki = oidc.register(app, "Wiki", frontchannel_logout_uri=WIKI_FC)
    oidc.register(app, "Never joined", frontchannel_logout_uri="https://never.example.com/fc")
    plain = oidc.register(app, "No front channel")
    rx.sign_in_to(http, notes)
    rx.sign_in_to(http, wiki)
    rx.sign_in_to(http, plain)

    page = logout_form(http)

    hosts = sorted(urlsplit(url).netloc for url in framed_urls(page))
    assert hosts == ["notes.example.com", "wiki.example.com"]
    text = page.get_data(as_text=True)
    assert "never.example.com" not in text
    assert "Signing you out of 2 other apps" in text


def test_no_participants_no_frames(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    page = logout_form(http)
    assert iframes(page) == []
    assert "<script>" not in page.get_data(as_text=True)


def test_the_frames_are_html_escaped(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    odd = 'https://odd.example.com/fc?a=1&b="x"'
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=odd)
    rx.sign_in_to(http, notes)
    page = logout_form(http)
    (url,) = framed_urls(page)
    assert url.startswith(odd + "&iss=")
    assert 'b="x"' not in page.get_data(as_text=True)


def test_a_session_of_another_browser_is_not_framed(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    other = app.test_client()
    assert AuthActions(other).login(logged_in.email, logged_in.password).status_code == 302
    rx.sign_in_to(other, notes)
    assert iframes(logout_form(http)) == []


def test_end_session_frames_every_participant_but_the_initiator_then_redirects(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    notes = oidc.register(
        app, "Notes", frontchannel_logout_uri=NOTES_FC, post_logout_redirect_uris=[LOGGED_OUT]
    )
    wiki = oidc.register(app, "Wiki", frontchannel_logout_uri=WIKI_FC)
    notes_tokens = rx.sign_in_to(http, notes)
    wiki_tokens = rx.sign_in_to(http, wiki)

    page = http.get(
        "/end_session",
        query_string={
            "id_token_hint": notes_tokens["id_token"],
            "post_logout_redirect_uri": LOGGED_OUT,
            "state": "st",
        },
    )

    assert page.status_code == 200
    (url,) = framed_urls(page)
    assert urlsplit(url).netloc == "wiki.example.com"
    assert parse_qs(urlsplit(url).query)["sid"] == [wiki_tokens["claims"]["sid"]]
    text = page.get_data(as_text=True)
    # The final redirect comes after the frames: by script once they load, or by the link.
    assert text.index("<iframe") < text.index('id="continue"')
    assert re.search(r'id="continue" href="https://notes\.example\.com/bye\?state=st"', text)
    assert '"https://notes.example.com/bye?state=st"' in text  # the script's target
    rx.assert_tokens_dead(http, wiki, wiki_tokens)


def test_a_client_named_without_proof_is_framed_too(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    """Only an id_token_hint proves the RP logged itself out; a bare client_id does not."""
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    rx.sign_in_to(http, notes)
    page = http.get("/end_session", query_string={"client_id": notes.client_id})
    response = http.post(
        "/end_session",
        data={"client_id": notes.client_id, "confirm": "yes", "csrf_token": csrf_token(page.data)},
    )
    assert response.status_code == 200
    (url,) = framed_urls(response)
    assert urlsplit(url).netloc == "notes.example.com"
    assert http.get("/").status_code == 302
