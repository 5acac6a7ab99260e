"""python3-saml accepts our Responses on both request bindings, whatever their protection.

Signed response, signed assertion, encrypted assertion: each is really there in the XML.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from tests.conftest import TestUser
from tests.helpers import saml

MODES = {
    # mode: (SP security settings, IdP registration options)
    "signed-response-and-assertion": ({}, {}),
    "signed-response": ({"wantAssertionsSigned": False}, {"sign_assertion": False}),
    "signed-assertion": ({"wantMessagesSigned": False}, {"sign_response": False}),
    "encrypted-assertion": ({"wantAssertionsEncrypted": True}, {}),
}


def send_request(http: FlaskClient, settings: dict[str, Any], binding: str) -> tuple[Any, str]:
    if binding == "redirect":
        return saml.sso(http, settings)
    request = OneLogin_Saml2_Authn_Request(OneLogin_Saml2_Settings(copy.deepcopy(settings)))
    xml = request.get_xml()
    fields = {"SAMLRequest": base64.b64encode(xml.encode()).decode(), "RelayState": "/home"}
    return http.post("/saml/sso", data=fields), request.get_id()


@pytest.mark.parametrize("binding", ["redirect", "post"])
@pytest.mark.parametrize("mode", list(MODES))
def test_python3_saml_accepts_each_protection(
    app: Flask, http: FlaskClient, logged_in: TestUser, binding: str, mode: str
) -> None:
    security, options = MODES[mode]
    settings = saml.sp_settings(http, **security)
    saml.register(app, settings, **options)
    response, request_id = send_request(http, settings, binding)
    form = saml.read_form(response)
    root = form.xml()
    response_signed = bool(root.xpath("ds:Signature", namespaces=saml.NS))
    assertion_signed = bool(root.xpath("saml:Assertion/ds:Signature", namespaces=saml.NS))
    encrypted = bool(root.xpath("saml:EncryptedAssertion", namespaces=saml.NS))
    expected = {
        "signed-response-and-assertion": (True, True, False),
        "signed-response": (True, False, False),
        "signed-assertion": (False, True, False),
        "encrypted-assertion": (True, False, True),
    }[mode]
    assert (response_signed, assertion_signed, encrypted) == expected
    if encrypted:
        assert logged_in.email.encode() not in base64.b64decode(form.fields["SAMLResponse"])
    sp = saml.process_response(settings, form, request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.get_attribute("urn:oid:0.9.2342.19200300.100.1.3") == [logged_in.email]
