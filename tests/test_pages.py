"""The IdP's pages share one look: the page's title as the only <h1>, and a favicon.

Error pages (404, 405, 500, any HTTP error) use that layout with a link home, never stock text.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask import abort
from flask.testing import FlaskClient
from werkzeug.exceptions import NotFound
from werkzeug.exceptions import TooManyRequests

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml
from tests.helpers.forms import csrf_token

TEMPLATES = Path(__file__).resolve().parent.parent / "idp" / "templates"
STOCK_TEXTS = ("The requested URL was not found", "The method is not allowed", "Internal Server")


class Outline(HTMLParser):
    """The <title>, the text of each <h1>, and the icon links of a page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.title = ""
        self.headings: list[str] = []
        self.icons: list[dict[str, str | None]] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title:
            return  # an inline SVG's <title> (a tooltip), not the page's
        if tag in ("title", "h1"):
            self._in = tag
            if tag == "h1":
                self.headings.append("")
        elif tag == "link" and dict(attrs).get("rel") == "icon":
            self.icons.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.headings[-1] += data


def outline(response: Any) -> Outline:
    assert response.mimetype == "text/html", response.status_code
    return Outline(response.get_data(as_text=True))


def assert_idp_page(response: Any, heading: str) -> None:
    """One <h1>, the page's own heading (not the brand), with the favicon and stylesheet."""
    page = outline(response)
    assert [text.strip() for text in page.headings] == [heading]
    assert page.title.strip().endswith(" · idp")
    assert [icon["href"] for icon in page.icons] == ["/static/favicon.svg"]
    assert 'href="/static/idp.css"' in response.get_data(as_text=True)


def test_every_page_template_gets_its_heading_from_the_layout() -> None:
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        if path.name == "base.html" or path.name.startswith("_"):
            continue
        assert text.startswith('{% extends "base.html" %}'), path
        assert not re.search(r"<h1\b", text), f"{path}: the layout renders the only <h1>"


def test_the_login_and_account_pages_have_their_title_as_heading(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    assert_idp_page(http.get("/login"), "Sign in")
    auth.login(user.email, user.password)
    assert_idp_page(http.get("/"), "Your account")
    logout_page = http.get("/logout")
    assert_idp_page(logout_page, "Sign out?")
    signed_out = http.post("/logout", data={"csrf_token": csrf_token(logout_page.data)})
    assert_idp_page(signed_out, "You are signed out")


def test_the_protocol_pages_have_a_heading(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Notes", is_trusted=False)
    assert_idp_page(oidc.authorize(http, client), "Notes wants to")
    refused = http.get("/authorize", query_string={"client_id": "nope"})
    assert_idp_page(refused, "This sign-in request cannot continue")
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    response, _ = saml.sso(http, settings)
    assert_idp_page(response, "Continue")
    assert_idp_page(http.get("/saml/sso"), "Bad SAML request")


def test_the_favicon_is_served_at_both_addresses(http: FlaskClient) -> None:
    with http.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200
        assert icon.mimetype == "image/svg+xml"
        assert icon.data.startswith(b"<svg ") and b"<script" not in icon.data
    # Browsers ask for /favicon.ico by themselves (JSON pages): no 404 in the log.
    with http.get("/favicon.ico") as legacy:
        assert legacy.status_code == 200
        assert legacy.mimetype == "image/svg+xml"
        assert legacy.data == icon.data


def assert_error_page(response: Any, status: int, heading: str, message: str) -> None:
    assert response.status_code == status
    assert_idp_page(response, heading)
    body = unescape(response.get_data(as_text=True))
    assert message in body
    assert '<a href="/">' in body  # a way home
    for stock in STOCK_TEXTS:
        assert stock not in body
    assert "Traceback" not in body


def test_an_unknown_address_is_the_idps_404_page(http: FlaskClient) -> None:
    response = http.get("/no/such/page")
    assert_error_page(response, 404, "Page not found", "There is no page at this address.")


def test_a_wrong_method_is_the_idps_405_page_with_allow(http: FlaskClient) -> None:
    response = http.post("/healthz")
    assert_error_page(response, 405, "Not allowed", "This page cannot be used that way.")
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    def explode() -> str:
        raise RuntimeError("secret detail /srv/idp/secret.py")

    def throttled() -> str:
        raise TooManyRequests(retry_after=30)

    def refused() -> str:
        abort(403)

    def gone() -> str:
        raise NotFound("This invitation was withdrawn.")

    for rule, view in (
        ("/explode", explode),
        ("/throttled", throttled),
        ("/refused", refused),
        ("/gone", gone),
    ):
        app.add_url_rule(rule, view.__name__, view)
    return app


def test_a_500_is_the_idps_page_without_a_traceback(
    failing_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = failing_app.test_client().get("/explode")
    assert_error_page(response, 500, "Something went wrong", "Something went wrong on our side.")
    body = response.get_data(as_text=True)
    assert "secret detail" not in body and "RuntimeError" not in body and "/srv/" not in body
    assert any(record.exc_info for record in caplog.records)  # the operator gets the stack


def test_any_http_error_gets_the_idps_page(failing_app: Flask) -> None:
    http = failing_app.test_client()
    throttled = http.get("/throttled")
    assert_error_page(throttled, 429, "Too many requests", "wait a moment")
    assert throttled.headers["Retry-After"] == "30"
    assert_error_page(http.get("/refused"), 403, "Forbidden", "The request could not be handled.")
    # A description given on purpose is shown as written.
    assert_error_page(http.get("/gone"), 404, "Page not found", "This invitation was withdrawn.")


def test_api_callers_still_get_json(failing_app: Flask) -> None:
    http = failing_app.test_client()
    for path, status, error in (
        ("/no/such/page", 404, "not_found"),
        ("/explode", 500, "internal_server_error"),
    ):
        response = http.get(path, headers={"Accept": "application/json"})
        assert response.status_code == status
        assert response.get_json()["error"] == error
        assert "secret detail" not in response.get_data(as_text=True)
