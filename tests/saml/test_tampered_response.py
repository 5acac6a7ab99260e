"""A Response changed on its way to the SP is rejected by python3-saml: the signatures matter."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from tests.conftest import TestUser
from tests.helpers import saml


def _tamper(form: saml.PostForm, change: Any) -> saml.PostForm:
    root = form.xml()
    change(root)
    fields = {**form.fields, "SAMLResponse": base64.b64encode(etree.tostring(root)).decode()}
    return saml.PostForm(form.action, fields, form.has_noscript_button)


def _other_email(root: etree._Element) -> None:
    value = root.xpath(
        "//saml:Attribute[@FriendlyName='mail']/saml:AttributeValue", namespaces=saml.NS
    )[0]
    value.text = "mallory@example.com"


def _other_name_id(root: etree._Element) -> None:
    root.xpath("//saml:NameID", namespaces=saml.NS)[0].text = "someone-else"


def _resigned_by_attacker(root: etree._Element) -> None:
    """Change the NameID and sign again, with a key of the attacker's."""
    _other_name_id(root)
    key_pem, cert_pem = saml.sp_key_pair("attacker")
    old = root.xpath("saml:Assertion", namespaces=saml.NS)[0]
    assertion = etree.fromstring(etree.tostring(old))
    signature = assertion.find(f"{{{saml.NS['ds']}}}Signature")
    if signature is not None:
        assertion.remove(signature)
        OneLogin_Saml2_Utils.add_sign(assertion, key_pem, cert_pem)
    old.addnext(assertion)
    root.remove(old)
    signature = root.find(f"{{{saml.NS['ds']}}}Signature")
    if signature is not None:
        root.remove(signature)
        OneLogin_Saml2_Utils.add_sign(root, key_pem, cert_pem)


@pytest.mark.parametrize(
    "change",
    [_other_email, _other_name_id, _resigned_by_attacker],
    ids=["attribute", "name-id", "attacker-signature"],
)
@pytest.mark.parametrize("mode", ["both", "assertion-only"])
def test_python3_saml_rejects_a_tampered_response(
    app: Flask, http: FlaskClient, logged_in: TestUser, change: Any, mode: str
) -> None:
    if mode == "both":
        settings = saml.sp_settings(http)
        saml.register(app, settings)
    else:
        settings = saml.sp_settings(http, wantMessagesSigned=False)
        saml.register(app, settings, sign_response=False)
    response, request_id = saml.sso(http, settings)
    form = saml.read_form(response)
    genuine = saml.process_response(settings, form, request_id)
    assert genuine.get_errors() == [], genuine.get_last_error_reason()
    tampered = saml.process_response(settings, _tamper(form, change), request_id)
    assert tampered.get_errors() == ["invalid_response"]
    assert "ignature" in (tampered.get_last_error_reason() or "")
    assert not tampered.is_authenticated()
