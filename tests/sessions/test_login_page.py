"""What the login page says: the app asking, the address kept after a failure, one word.

The page names the client or SP from its registration (never from a parameter), and says
nothing more about an unknown account than about a wrong password.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml
from tests.helpers.forms import csrf_token

ALERT = re.compile(r'role="alert">([^<]*)<')
REQUESTER = re.compile(r"to continue to <strong>([^<]*)</strong>")


def requester(page: Any) -> str | None:
    found = REQUESTER.search(page.get_data(as_text=True))
    return found.group(1) if found else None


def next_of(response: Any) -> str:
    assert response.status_code == 302, response.data[:300]
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    return parse_qs(location.query)["next"][0]


def post_login(http: FlaskClient, email: str, password: str, next_url: str | None = None) -> Any:
    page = http.get("/login", query_string={"next": next_url} if next_url else None)
    form = {"csrf_token": csrf_token(page.data), "username": email, "password": password}
    if next_url:
        form["next"] = next_url
    return http.post("/login", data=form)


def test_a_wrong_password_keeps_the_email_and_says_email(http: FlaskClient, user: TestUser) -> None:
    page = post_login(http, user.email, "not the password")
    assert page.status_code == 401
    body = page.get_data(as_text=True)
    assert ALERT.findall(body) == ["Invalid email or password."]
    assert f'value="{user.email}"' in body
    assert ">Email</label>" in body
    # "username" is the contract's field name only, never a word the person reads.
    visible = re.sub(r"<[^>]*>", " ", body)
    assert "username" not in visible.lower()


def test_a_kept_email_is_escaped_and_bounded(http: FlaskClient, user: TestUser) -> None:
    hostile = '"><script>alert(1)</script>' + "a" * 600 + "@example.com"
    body = post_login(http, hostile, "not the password").get_data(as_text=True)
    assert "<script>alert(1)" not in body
    value = re.search(r'id="username"[^>]*value="([^"]*)"', body)
    assert value is not None
    assert value.group(1).startswith("&#34;&gt;&lt;script&gt;")
    assert len(value.group(1)) < 700  # 320 characters, some escaped


def test_the_page_names_the_oidc_client_asking(app: Flask, http: FlaskClient) -> None:
    client = oidc.register(app, "Team Notes")
    next_url = next_of(oidc.authorize(http, client))
    page = http.get("/login", query_string={"next": next_url})
    assert page.status_code == 200
    assert requester(page) == "Team Notes"
    # Still named after a failed attempt.
    assert requester(post_login(http, "nobody@example.com", "x", next_url)) == "Team Notes"


def test_the_page_names_the_saml_sp_asking(app: Flask, http: FlaskClient) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings, name="Payroll")
    response, _ = saml.sso(http, settings)
    assert requester(http.get("/login", query_string={"next": next_of(response)})) == "Payroll"
    initiated = http.get("/saml/sso/init", query_string={"sp": saml.SP_ENTITY_ID})
    assert requester(http.get("/login", query_string={"next": next_of(initiated)})) == "Payroll"


def test_a_link_cannot_choose_the_name(app: Flask, http: FlaskClient) -> None:
    oidc.register(app, "Notes", client_id="notes")
    for next_url in (
        None,
        "/",
        "/authorize?" + urlencode({"client_id": "nope", "client_name": "Your Bank"}),
        "/authorize?client_id=notes&client_id=notes",
        "/authorize?client_id=%00",
        "/authorize?client_id=" + "x" * 5000,
        "/saml/sso/resume?request=forged.token",
        "/saml/sso/init?sp=%00",
        "/no/such/page?client_id=notes",
        "/authorize/?client_id=notes",
    ):
        page = http.get("/login", query_string={"next": next_url} if next_url else None)
        assert page.status_code == 200, (next_url, page.data[:300])
        assert requester(page) is None, next_url
        assert "Your Bank" not in page.get_data(as_text=True)


def test_login_still_leads_back_to_the_request(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    client = oidc.register(app)
    next_url = next_of(oidc.authorize(http, client))
    logged = auth.login(user.email, user.password, next_url=next_url)
    assert logged.status_code == 302 and logged.headers["Location"] == next_url
    assert "code" in oidc.query_of(http.get(next_url).headers["Location"])
