"""Without a login the AuthnRequest waits for /login and is answered once (SAML Core §3.4.1).

ForceAuthn asks for the password again; IsPassive never shows a page.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from lxml import etree

from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import saml
from tests.helpers.forms import csrf_token


def login_redirect(response: Any) -> tuple[str, dict[str, list[str]]]:
    """Return (next URL, login query) of a redirect to /login."""
    assert response.status_code == 302, response.data[:300]
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    query = parse_qs(location.query)
    return query["next"][0], query


def test_the_request_survives_the_login_and_is_answered_once(
    app: Flask, http: FlaskClient, sp: dict[str, Any], auth: AuthActions, user: TestUser
) -> None:
    response, request_id = saml.sso(http, sp)
    next_url, query = login_redirect(response)
    assert next_url.startswith("/saml/sso/resume?")
    assert "force" not in query
    before_login = saml.counts(app)
    assert before_login["saml_session_index"] == 0
    logged = auth.login(user.email, user.password, next_url=next_url)
    assert logged.status_code == 302 and logged.headers["Location"] == next_url
    form = saml.read_form(http.get(next_url))
    sp_auth = saml.process_response(sp, form, request_id)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert form.fields["RelayState"] == "/home"
    # The same pending request cannot be answered twice.
    after = saml.counts(app)
    again = http.get(next_url)
    assert again.status_code == 400
    assert "already completed" in html.unescape(again.data.decode())
    assert saml.counts(app) == after


def test_a_forged_resume_link_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], auth: AuthActions, user: TestUser
) -> None:
    response, _ = saml.sso(http, sp)
    next_url, _ = login_redirect(response)
    auth.login(user.email, user.password)
    token = parse_qs(urlsplit(next_url).query)["request"][0]
    payload, _, signature = token.rpartition(".")
    forged_acs = URLSafeSerializer("not-the-secret-key", salt="idp.saml.pending-authn-request")
    before = saml.counts(app)
    for forged in (
        payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature,
        forged_acs.dumps({"sp": saml.SP_ENTITY_ID, "acs_url": "https://evil.example.com/"}),
        "",
    ):
        page = http.get("/saml/sso/resume", query_string={"request": forged})
        assert page.status_code == 400
        assert "not valid" in page.data.decode()
        assert saml.counts(app) == before
    assert saml.read_form(http.get(next_url)).action == saml.ACS_URL  # the genuine one works


def test_a_pending_request_expires(
    app: Flask,
    http: FlaskClient,
    sp: dict[str, Any],
    auth: AuthActions,
    user: TestUser,
    clock: Clock,
) -> None:
    response, _ = saml.sso(http, sp)
    next_url, _ = login_redirect(response)
    clock.advance(minutes=31)
    auth.login(user.email, user.password, next_url=next_url)
    before = saml.counts(app)
    late = http.get(next_url)
    assert late.status_code == 400
    assert "took too long" in late.data.decode()
    assert saml.counts(app) == before


def test_force_authn_asks_for_the_password_again(
    app: Flask,
    http: FlaskClient,
    sp: dict[str, Any],
    logged_in: TestUser,
    clock: Clock,
) -> None:
    clock.advance(seconds=90)
    response, request_id = saml.sso(http, sp, force_authn=True)
    next_url, query = login_redirect(response)
    assert query["force"] == ["1"]
    # Skipping the login form does not help: the old login is too old for this request.
    skipped = http.get(next_url)
    assert login_redirect(skipped)[0] == next_url
    assert saml.counts(app)["saml_session_index"] == 0
    page = http.get(response.headers["Location"])  # the login form, forced
    assert page.status_code == 200
    logged = http.post(
        response.headers["Location"],
        data={
            "csrf_token": csrf_token(page.data),
            "username": logged_in.email,
            "password": logged_in.password,
            "next": next_url,
            "force": "1",
        },
    )
    assert logged.status_code == 302 and logged.headers["Location"] == next_url
    form = saml.read_form(http.get(next_url))
    sp_auth = saml.process_response(sp, form, request_id)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    authn_instant = form.xml().xpath("//saml:AuthnStatement/@AuthnInstant", namespaces=saml.NS)
    assert authn_instant == [clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_is_passive_without_a_login_answers_no_passive(
    app: Flask, http: FlaskClient, sp: dict[str, Any]
) -> None:
    before = saml.counts(app)
    response, request_id = saml.sso(http, sp, is_passive=True)
    form = saml.read_form(response)  # no login page: straight back to the ACS
    root = form.xml()
    codes = root.xpath("samlp:Status//samlp:StatusCode/@Value", namespaces=saml.NS)
    assert codes == [
        "urn:oasis:names:tc:SAML:2.0:status:Responder",
        "urn:oasis:names:tc:SAML:2.0:status:NoPassive",
    ]
    assert root.xpath("ds:Signature", namespaces=saml.NS)  # error responses are signed too
    assert not root.xpath("saml:Assertion", namespaces=saml.NS)
    sp_auth = saml.process_response(sp, form, request_id)
    assert not sp_auth.is_authenticated()
    assert "was Responder" in (sp_auth.get_last_error_reason() or "")
    after = saml.counts(app)
    assert after["replay_entry"] == before["replay_entry"] + 1  # the request ID is spent
    assert {k: v for k, v in after.items() if k != "replay_entry"} == {
        k: v for k, v in before.items() if k != "replay_entry"
    }
    refusal = saml.audit_events(app, "saml_request_refused")[-1]
    assert refusal.details["status"] == "urn:oasis:names:tc:SAML:2.0:status:NoPassive"


def test_is_passive_with_a_login_signs_in_silently(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    response, request_id = saml.sso(http, sp, is_passive=True)
    sp_auth = saml.process_response(sp, saml.read_form(response), request_id)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()


def test_a_post_without_the_cookie_looks_again_from_a_same_site_get(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    """A cross-site HTTP-POST carries no SameSite=Lax cookie: no NoPassive for a logged-in user."""
    xml = saml.authn_request(request_id="_passive-post", IsPassive="true")
    cookieless = app.test_client()
    before = saml.counts(app)
    hop = cookieless.post("/saml/sso", data=saml.post_fields(etree.tostring(xml), "/home"))
    assert hop.status_code == 303
    assert urlsplit(hop.headers["Location"]).path == "/saml/sso/resume"
    assert "SAMLRequest" not in hop.headers["Location"]  # the signed pending request only
    assert saml.audit_events(app, "saml_request_refused") == []
    assert {k: v for k, v in saml.counts(app).items() if k != "replay_entry"} == {
        k: v for k, v in before.items() if k != "replay_entry"
    }
    # The same-site GET carries the cookie: the logged-in user is signed in silently, once.
    form = saml.read_form(http.get(hop.headers["Location"]))
    sp_auth = saml.process_response(sp, form, "_passive-post")
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert form.fields["RelayState"] == "/home"
    assert http.get(hop.headers["Location"]).status_code == 400
    # Without any session, the answer after the hop is NoPassive, as before.
    other = saml.authn_request(request_id="_passive-none", IsPassive="true")
    hop = cookieless.post("/saml/sso", data=saml.post_fields(etree.tostring(other)))
    codes = (
        saml.read_form(cookieless.get(hop.headers["Location"]))
        .xml()
        .xpath("samlp:Status//samlp:StatusCode/@Value", namespaces=saml.NS)
    )
    assert codes[-1] == "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
