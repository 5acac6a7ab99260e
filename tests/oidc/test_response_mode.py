"""``response_mode`` (OAuth 2.0 Multiple Response Types; Form Post Response Mode)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.models.oidc import AuthorizationCode
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count

ISSUER = "http://idp.test"
TRICKY_STATE = """a b&c=d"e'f<g>h%20i+j\u00e9"""


class FormParser(HTMLParser):
    """Read forms the way a browser does: entities decoded, nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.scripts = 0
        self.in_noscript = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append(
                {"method": values.get("method"), "action": values.get("action"), "fields": []}
            )
        elif tag == "input" and values.get("type") == "hidden" and self.forms:
            self.forms[-1]["fields"].append((values["name"], values["value"]))
        elif tag == "button" or (tag == "input" and values.get("type") == "submit"):
            self.buttons.append(values)
        elif tag == "script":
            self.scripts += 1


def parse_form(response: Any) -> tuple[str, dict[str, str], FormParser]:
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == "text/html"
    assert "Location" not in response.headers
    parser = FormParser()
    parser.feed(response.data.decode())
    [form] = parser.forms
    assert form["method"].lower() == "post"
    names = [name for name, _ in form["fields"]]
    assert len(names) == len(set(names)), names
    return form["action"], dict(form["fields"]), parser


def test_form_post_posts_code_state_and_iss_to_the_redirect_uri(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, response_mode="form_post", state=TRICKY_STATE)
    action, fields, parser = parse_form(response)
    assert action == client.redirect_uri
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == TRICKY_STATE  # HTML-escaped, not percent-encoded
    assert fields["iss"] == ISSUER
    assert response.headers["Cache-Control"] == "no-store"
    # Works without JavaScript: a visible submit button the user can press.
    assert parser.buttons
    body = oidc.exchange(http, client, fields["code"]).get_json()
    oidc.decode(http, body["id_token"], audience=client.client_id)


def test_form_post_escapes_a_hostile_redirect_uri(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    uri = 'https://rp.example.com/cb?x="><script>alert(1)</script>&y=<b>'
    client = oidc.register(app, redirect_uris=[uri])
    response = oidc.authorize(http, client, response_mode="form_post")
    action, fields, parser = parse_form(response)
    assert action == uri
    assert b"<script>alert" not in response.data
    assert parser.scripts <= 1
    assert "code" in fields


def test_form_post_errors_are_posted_too(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, response_mode="form_post", prompt="none")
    action, fields, parser = parse_form(response)
    assert action == client.redirect_uri
    assert fields["error"] == "login_required"
    assert fields["state"] == "state-123"
    assert fields["iss"] == ISSUER
    assert "code" not in fields
    assert parser.buttons
    assert count(app, AuthorizationCode) == 0


def test_form_post_deny_is_posted(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app, is_trusted=False)
    page = oidc.authorize(http, client, response_mode="form_post", state=TRICKY_STATE)
    assert page.status_code == 200 and b'name="decision"' in page.data
    response = http.post(
        page.request.full_path, data={"csrf_token": csrf_token(page.data), "decision": "deny"}
    )
    action, fields, _ = parse_form(response)
    assert action == client.redirect_uri
    assert fields["error"] == "access_denied"
    assert fields["state"] == TRICKY_STATE
    assert fields["iss"] == ISSUER
    assert count(app, AuthorizationCode) == 0


def test_form_post_allow_is_posted(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app, is_trusted=False)
    page = oidc.authorize(http, client, response_mode="form_post")
    response = http.post(
        page.request.full_path, data={"csrf_token": csrf_token(page.data), "decision": "allow"}
    )
    _, fields, _ = parse_form(response)
    assert set(fields) == {"code", "state", "iss"}


def test_query_mode_is_the_default_and_may_be_explicit(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, response_mode="query")
    assert response.status_code == 302
    query = oidc.query_of(response.headers["Location"])
    assert {"code", "state", "iss"} <= set(query)


@pytest.mark.parametrize("mode", ["fragment", "web_message", "jwt", "FORM_POST", "query "])
def test_unsupported_response_mode_is_invalid_request(
    app: Flask, http: FlaskClient, logged_in: TestUser, mode: str
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(http, client, response_mode=mode)
    assert response.status_code == 302, response.data[:300]
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    query = oidc.query_of(location)
    assert query["error"] == "invalid_request"
    assert query["state"] == "state-123" and query["iss"] == ISSUER
    assert count(app, AuthorizationCode) == 0


def test_unsupported_response_mode_with_a_bad_redirect_uri_is_not_redirected(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    response = oidc.authorize(
        http, client, response_mode="form_post", redirect_uri="https://evil.example/cb"
    )
    assert response.status_code == 400
    assert b"<form" not in response.data
    assert "Location" not in response.headers
