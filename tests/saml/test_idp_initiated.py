"""IdP-initiated SSO: /saml/sso/init?sp=ENTITY_ID[&RelayState=] (RelayState from an allowlist)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import saml


def init_url(entity_id: str, relay_state: str | None = None) -> str:
    url = f"/saml/sso/init?sp={quote(entity_id, safe='')}"
    return url + (f"&RelayState={quote(relay_state, safe='')}" if relay_state else "")


def test_an_unsolicited_response_is_accepted(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings, relay_states=["/dashboard"])
    form = saml.read_form(http.get(init_url(saml.SP_ENTITY_ID, "/dashboard")))
    assert form.action == saml.ACS_URL
    assert form.fields["RelayState"] == "/dashboard"
    root = form.xml()
    assert root.get("InResponseTo") is None
    assert not root.xpath("//saml:SubjectConfirmationData/@InResponseTo", namespaces=saml.NS)
    sp = saml.process_response(settings, form, None)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert saml.audit_events(app, "assertion_issued")[-1].details["idp_initiated"] is True


def test_without_a_login_the_user_logs_in_first(
    app: Flask, http: FlaskClient, sp: dict[str, Any], auth: AuthActions, user: TestUser
) -> None:
    url = init_url(saml.SP_ENTITY_ID)
    response = http.get(url)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    logged = auth.login(user.email, user.password, next_url=url)
    assert logged.headers["Location"] == url
    form = saml.read_form(http.get(url))
    assert "RelayState" not in form.fields
    assert saml.process_response(sp, form, None).get_errors() == []


def test_a_relay_state_not_in_the_allowlist_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings, relay_states=["/dashboard"])
    before = saml.counts(app)
    response = http.get(init_url(saml.SP_ENTITY_ID, "https://evil.example.com/"))
    saml.assert_refused(app, response, before, "RelayState is not allowed")
    response = http.get(init_url(saml.SP_ENTITY_ID, "/" + "x" * 90))
    saml.assert_refused(app, response, before, "longer than 80 bytes")


def test_an_unknown_sp_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    response = http.get(init_url("https://unknown.example.com/metadata"))
    saml.assert_refused(app, response, before, "not registered")
    saml.assert_refused(app, http.get("/saml/sso/init"), before, "not registered")
    # A NUL byte cannot reach PostgreSQL (it would be a 500, not a refusal).
    saml.assert_refused(app, http.get("/saml/sso/init?sp=%00"), before, "control characters")
