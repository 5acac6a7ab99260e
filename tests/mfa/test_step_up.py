"""What the user did is what apps are told: amr/acr in ID tokens, SAML AuthnContextClassRef.

Step-up when an app asks for more than a password-only session has.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from idp.models import LoginSession
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import mfa
from tests.helpers import oidc
from tests.helpers import saml
from tests.helpers.rows import count

MFA_CLASS = "https://refeds.org/profile/mfa"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"


def id_token(http: FlaskClient, client: oidc.Client, code: str) -> dict[str, Any]:
    body = oidc.exchange(http, client, code).get_json()
    return oidc.decode(http, body["id_token"], audience=client.client_id)


def test_discovery_lists_the_acr_values(http: FlaskClient) -> None:
    metadata = http.get("/.well-known/openid-configuration").get_json()
    assert metadata["acr_values_supported"] == [
        "1",
        "2",
        MFA_CLASS,
        "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
    ]


def test_a_totp_login_is_told_as_amr_pwd_otp_mfa_and_acr_2(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    secret = mfa.enrol(app, user.email)
    auth.login(user.email, user.password)
    mfa.submit_otp(http, mfa.code(secret, clock.now))
    client = oidc.register(app)
    claims = id_token(http, client, oidc.get_code(http, client))
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "2"
    # An RP naming REFEDS MFA is told that very value (OIDC Core §5.5.1.1).
    code = oidc.get_code(http, client, acr_values=f"{MFA_CLASS} 1", nonce="second")
    assert id_token(http, client, code)["acr"] == MFA_CLASS


def test_acr_values_asking_for_mfa_step_up_a_password_session(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    # A session from before the factor was set up: password only.
    auth.login(user.email, user.password)
    secret = mfa.enrol(app, user.email)
    assert id_token(http, client, oidc.get_code(http, client))["amr"] == ["pwd"]
    response = oidc.authorize(http, client, acr_values="2", nonce="second")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/login/otp")
    page = http.get("/login/otp").get_data(as_text=True)
    assert 'name="password"' not in page  # the password is not asked again
    back = mfa.submit_otp(http, mfa.code(secret, clock.now))
    assert back.status_code == 303 and back.headers["Location"].startswith("/authorize?")
    response = http.get(back.headers["Location"])
    assert response.status_code == 302
    claims = id_token(http, client, oidc.query_of(response.headers["Location"])["code"])
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "2"
    assert count(app, LoginSession) == 1  # the same session (same sid), upgraded


def test_an_essential_acr_claim_steps_up_too(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    auth.login(user.email, user.password)
    secret = mfa.enrol(app, user.email)
    client = oidc.register(app)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": [MFA_CLASS]}}})
    response = oidc.authorize(http, client, claims=claims)
    assert response.headers["Location"].endswith("/login/otp")
    back = mfa.submit_otp(http, mfa.code(secret, clock.now))
    code = oidc.query_of(http.get(back.headers["Location"]).headers["Location"])["code"]
    assert id_token(http, client, code)["acr"] == MFA_CLASS


def test_a_user_without_a_factor_is_unmet_authentication_requirements(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    before = count(app, LoginSession)
    for params in (
        {"acr_values": "2"},
        {"claims": json.dumps({"id_token": {"acr": {"essential": True, "value": "2"}}})},
    ):
        response = oidc.authorize(http, client, **params)
        assert response.status_code == 302
        query = oidc.query_of(response.headers["Location"])
        assert response.headers["Location"].startswith(oidc.REDIRECT_URI)
        assert query["error"] == "unmet_authentication_requirements"
        assert query["state"] == "state-123"
    assert count(app, LoginSession) == before


def test_prompt_none_cannot_step_up(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    auth.login(user.email, user.password)
    mfa.enrol(app, user.email)
    client = oidc.register(app)
    response = oidc.authorize(http, client, acr_values="2", prompt="none")
    assert oidc.query_of(response.headers["Location"])["error"] == "interaction_required"


def authn_request_for_mfa(comparison: str) -> etree._Element:
    root = saml.authn_request()
    requested = etree.SubElement(root, f"{{{saml.NS['samlp']}}}RequestedAuthnContext")
    requested.set("Comparison", comparison)
    etree.SubElement(requested, f"{{{saml.NS['saml']}}}AuthnContextClassRef").text = MFA_CLASS
    return root


@pytest.mark.parametrize("comparison", ["exact", "minimum"])
def test_saml_requested_authn_context_mfa_steps_up_a_password_session(
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    sp: dict[str, Any],
    clock: Clock,
    comparison: str,
) -> None:
    auth.login(user.email, user.password)
    secret = mfa.enrol(app, user.email)
    # Password only: PasswordProtectedTransport.
    form = saml.read_form(
        http.post("/saml/sso", data=saml.post_fields(etree.tostring(saml.authn_request())))
    )
    assert saml.value(form.xml(), "//saml:AuthnContextClassRef") == PPT
    root = authn_request_for_mfa(comparison)
    response = http.post("/saml/sso", data=saml.post_fields(etree.tostring(root)))
    assert response.headers["Location"].endswith("/login/otp")
    assert 'name="password"' not in http.get("/login/otp").get_data(as_text=True)
    back = mfa.submit_otp(http, mfa.code(secret, clock.now))
    assert back.headers["Location"].startswith("/saml/sso/resume?")
    form = saml.read_form(http.get(back.headers["Location"]))
    auth_ = saml.process_response(sp, form, root.get("ID"))
    assert auth_.get_errors() == [], auth_.get_last_error_reason()
    assert saml.value(form.xml(), "//saml:AuthnContextClassRef") == MFA_CLASS
    # The session is multi-factor now: the next such request is answered at once.
    again = authn_request_for_mfa(comparison)
    form = saml.read_form(http.post("/saml/sso", data=saml.post_fields(etree.tostring(again))))
    assert saml.value(form.xml(), "//saml:AuthnContextClassRef") == MFA_CLASS
    assert count(app, LoginSession) == 1


def test_saml_mfa_without_a_factor_is_no_authn_context(
    app: Flask, http: FlaskClient, logged_in: TestUser, sp: dict[str, Any]
) -> None:
    root = authn_request_for_mfa("minimum")
    form = saml.read_form(http.post("/saml/sso", data=saml.post_fields(etree.tostring(root))))
    codes = form.xml().xpath("samlp:Status//samlp:StatusCode/@Value", namespaces=saml.NS)
    assert codes == [RESPONDER, NO_AUTHN_CONTEXT]
    assert not form.xml().xpath("saml:Assertion", namespaces=saml.NS)


def test_a_step_up_ends_with_the_session_it_was_asked_in(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    auth.login(user.email, user.password)
    mfa.enrol(app, user.email)
    client = oidc.register(app)
    assert oidc.authorize(http, client, acr_values="2").headers["Location"].endswith("/login/otp")
    auth.logout()
    response = http.get("/login/otp")
    assert response.headers["Location"].endswith("/login")  # nothing to step up any more
    with app.app_context():
        from idp import db

        assert all(login.amr == ["pwd"] for login in db.get_session().query(LoginSession))
