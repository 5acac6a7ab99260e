"""Web Browser SSO with an HTTP-Redirect AuthnRequest, accepted by python3-saml as a real SP."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import Group
from idp.models import LoginSession
from idp.models import SamlSessionIndex
from idp.models import User
from tests.conftest import TestUser
from tests.helpers import saml

MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY_NAME = "urn:oid:2.16.840.1.113730.3.1.241"
GIVEN_NAME = "urn:oid:2.5.4.42"
SN = "urn:oid:2.5.4.4"
IS_MEMBER_OF = "urn:oid:1.3.6.1.4.1.5923.1.5.1.1"


def _join_groups(app: Flask, email: str, *names: str) -> None:
    with app.app_context():
        session = db.get_session()
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.given_name, user.family_name = "Alice", "Liddell"
        user.groups = [Group(name=name) for name in names]
        session.commit()


def test_python3_saml_accepts_the_response_with_every_attribute(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    _join_groups(app, logged_in.email, "finance", "staff")
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    response, request_id = saml.sso(http, settings)
    assert response.headers["Cache-Control"] == "no-store"
    form = saml.read_form(response)
    assert form.action == saml.ACS_URL
    assert form.fields["RelayState"] == "/home"  # passed back untouched
    assert form.has_noscript_button  # the form also works without JavaScript
    sp = saml.process_response(settings, form, request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.is_authenticated()
    assert sp.get_attribute(MAIL) == [logged_in.email]
    assert sp.get_attribute(DISPLAY_NAME) == [logged_in.name]
    assert sp.get_attribute(GIVEN_NAME) == ["Alice"]
    assert sp.get_attribute(SN) == ["Liddell"]
    assert sp.get_attribute(IS_MEMBER_OF) == ["finance", "staff"]
    assert sp.get_friendlyname_attribute("mail") == [logged_in.email]
    assert sp.get_friendlyname_attribute("isMemberOf") == ["finance", "staff"]
    assert sp.get_nameid_format() == saml.PERSISTENT


def test_the_response_has_every_required_part(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    response, request_id = saml.sso(http, settings)
    root = saml.read_form(response).xml()
    assert root.get("Destination") == saml.ACS_URL
    assert root.get("InResponseTo") == request_id
    assert saml.value(root, "saml:Issuer") == saml.IDP_ENTITY_ID
    assertions = root.xpath("saml:Assertion", namespaces=saml.NS)
    assert len(assertions) == 1
    assertion = assertions[0]
    # Both signed by default, each Reference pointing at the element's own ID.
    for element in (root, assertion):
        reference = element.xpath("ds:Signature/ds:SignedInfo/ds:Reference", namespaces=saml.NS)
        assert reference[0].get("URI") == "#" + element.get("ID")
        method = element.xpath("ds:Signature/ds:SignedInfo/ds:SignatureMethod", namespaces=saml.NS)
        assert method[0].get("Algorithm") == saml.RSA_SHA256
    data = assertion.xpath(
        "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", namespaces=saml.NS
    )[0]
    assert data.get("Recipient") == saml.ACS_URL
    assert data.get("InResponseTo") == request_id
    conditions = assertion.xpath("saml:Conditions", namespaces=saml.NS)[0]
    assert conditions.get("NotBefore") < assertion.get("IssueInstant") < data.get("NotOnOrAfter")
    assert saml.value(conditions, "saml:AudienceRestriction/saml:Audience") == saml.SP_ENTITY_ID
    statement = assertion.xpath("saml:AuthnStatement", namespaces=saml.NS)[0]
    assert (
        saml.value(statement, "saml:AuthnContext/saml:AuthnContextClassRef")
        == "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    )
    with app.app_context():
        login = db.get_session().scalar(select(LoginSession))
        record = db.get_session().scalar(select(SamlSessionIndex))
        assert login is not None and record is not None
        # The SessionIndex is recorded against the login session the browser holds.
        assert record.login_session_id == login.id
        assert statement.get("SessionIndex") == record.session_index
        assert statement.get("AuthnInstant") == login.auth_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert record.sp_entity_id == saml.SP_ENTITY_ID
    events = saml.audit_events(app, "assertion_issued")
    assert len(events) == 1
    assert events[0].rp == saml.SP_ENTITY_ID and events[0].sid == login.sid
    assert events[0].user_id == logged_in.id
    assert events[0].details["name_id_format"] == saml.PERSISTENT


def test_a_second_login_at_the_same_sp_keeps_its_session_index(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    indexes = []
    for _ in range(2):
        response, _ = saml.sso(http, settings)
        root = saml.read_form(response).xml()
        indexes.append(root.xpath("//saml:AuthnStatement/@SessionIndex", namespaces=saml.NS)[0])
    assert indexes[0] == indexes[1]
    assert saml.counts(app)["saml_session_index"] == 1
