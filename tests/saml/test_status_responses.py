"""Errors after the SP and ACS are validated: a signed Response with a status (Core §3.2.2.2).

Nothing is stored but the spent request ID.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import TestUser
from tests.helpers import saml

REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
KERBEROS = "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
MFA = "https://refeds.org/profile/mfa"


def request_with(
    *,
    name_id_format: str | None = None,
    allow_create: str | None = None,
    contexts: tuple[str, ...] = (),
    comparison: str | None = None,
) -> etree._Element:
    root = saml.authn_request()
    if name_id_format or allow_create:
        policy = etree.SubElement(root, f"{{{saml.NS['samlp']}}}NameIDPolicy")
        if name_id_format:
            policy.set("Format", name_id_format)
        if allow_create:
            policy.set("AllowCreate", allow_create)
    if contexts:
        requested = etree.SubElement(root, f"{{{saml.NS['samlp']}}}RequestedAuthnContext")
        if comparison:
            requested.set("Comparison", comparison)
        for context in contexts:
            ref = etree.SubElement(requested, f"{{{saml.NS['saml']}}}AuthnContextClassRef")
            ref.text = context
    return root


def post(http: FlaskClient, root: etree._Element) -> saml.PostForm:
    return saml.read_form(http.post("/saml/sso", data=saml.post_fields(etree.tostring(root))))


def assert_status(
    app: Flask,
    sp: dict[str, Any],
    form: saml.PostForm,
    request_id: str,
    before: dict[str, int],
    top: str,
    second: str,
) -> None:
    root = form.xml()
    assert form.action == saml.ACS_URL
    codes = root.xpath("samlp:Status//samlp:StatusCode/@Value", namespaces=saml.NS)
    assert codes == [top, second]
    assert not root.xpath("saml:Assertion", namespaces=saml.NS)
    auth = saml.process_response(sp, form, request_id)  # signed: the SP trusts the status
    assert not auth.is_authenticated()
    assert f"was {top.rsplit(':', 1)[1]}" in (auth.get_last_error_reason() or "")
    after = saml.counts(app)
    assert after.pop("replay_entry") == before.pop("replay_entry") + 1
    assert after == before


def test_an_unavailable_name_id_format_is_invalid_name_id_policy(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    # A format the IdP never issues (emailAddress it issues, mail being released here).
    root = request_with(name_id_format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    form = post(http, root)
    assert_status(app, sp, form, root.get("ID"), before, REQUESTER, INVALID_NAMEID_POLICY)


def test_allow_create_false_without_an_identifier_is_invalid_name_id_policy(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    root = request_with(name_id_format=saml.PERSISTENT, allow_create="false")
    form = post(http, root)
    assert_status(app, sp, form, root.get("ID"), before, REQUESTER, INVALID_NAMEID_POLICY)
    # Once the identifier exists, AllowCreate="false" is satisfied.
    post(http, request_with())
    again = request_with(name_id_format=saml.PERSISTENT, allow_create="false")
    auth = saml.process_response(sp, post(http, again), again.get("ID"))
    assert auth.get_errors() == [], auth.get_last_error_reason()


def test_an_unsatisfiable_authn_context_is_no_authn_context(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    root = request_with(contexts=(KERBEROS,))
    form = post(http, root)
    assert_status(app, sp, form, root.get("ID"), before, RESPONDER, NO_AUTHN_CONTEXT)


@pytest.mark.parametrize(
    ("contexts", "comparison", "stated"),
    [
        ((PASSWORD,), None, PASSWORD),
        ((KERBEROS, PPT), "exact", PPT),
        ((PASSWORD,), "minimum", PPT),
        ((PASSWORD,), "better", PPT),
        ((MFA,), "maximum", PPT),
    ],
    ids=["exact-weaker", "exact-second", "minimum", "better", "maximum"],
)
def test_a_satisfiable_authn_context_is_stated(
    app: Flask,
    http: FlaskClient,
    sp: dict[str, Any],
    logged_in: TestUser,
    contexts: tuple[str, ...],
    comparison: str | None,
    stated: str,
) -> None:
    form = post(http, request_with(contexts=contexts, comparison=comparison))
    refs = form.xml().xpath("//saml:AuthnContextClassRef", namespaces=saml.NS)
    assert [ref.text for ref in refs] == [stated]


@pytest.mark.parametrize("comparison", ["minimum", "better"])
def test_a_stronger_context_than_the_login_is_no_authn_context(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser, comparison: str
) -> None:
    before = saml.counts(app)
    root = request_with(contexts=(MFA,), comparison=comparison)
    form = post(http, root)
    assert_status(app, sp, form, root.get("ID"), before, RESPONDER, NO_AUTHN_CONTEXT)
