"""IdP metadata at /saml/metadata (SAML Metadata §2.4.3): valid, signed, complete.

During a key rollover it lists the next certificate before that key signs.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from idp.keys.store import get_key_store
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import saml

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def certificates(root: etree._Element) -> list[str]:
    return [
        "".join((element.text or "").split())
        for element in root.xpath(
            "md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']//ds:X509Certificate",
            namespaces=saml.NS,
        )
    ]


def pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if "-----" not in line)


def test_metadata_describes_the_idp(app: Flask, http: FlaskClient, clock: Clock) -> None:
    response = http.get("/saml/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/samlmetadata+xml"
    assert response.headers["Cache-Control"] == "public, max-age=600"
    assert OneLogin_Saml2_XML.validate_xml(response.data, "saml-schema-metadata-2.0.xsd") not in (
        "invalid_xml",
        "unloaded_xml",
    )
    root = etree.fromstring(response.data)
    assert root.get("entityID") == saml.IDP_ENTITY_ID
    assert root.get("cacheDuration") == "PT600S"
    valid_until = (clock.now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert root.get("validUntil") == valid_until
    idp = root.xpath("md:IDPSSODescriptor", namespaces=saml.NS)[0]
    assert idp.get("protocolSupportEnumeration") == "urn:oasis:names:tc:SAML:2.0:protocol"
    for service, url, extra in (
        ("SingleSignOnService", saml.SSO_URL, set()),
        # The back channel: SPs send SOAP LogoutRequests there (Bindings §3.2).
        ("SingleLogoutService", saml.IDP_SLO_URL, {(saml.SOAP, saml.IDP_SOAP_SLO_URL)}),
    ):
        endpoints = idp.xpath(f"md:{service}", namespaces=saml.NS)
        assert {(e.get("Binding"), e.get("Location")) for e in endpoints} == {
            (REDIRECT, url),
            (POST, url),
            *extra,
        }
    assert [e.text for e in idp.xpath("md:NameIDFormat", namespaces=saml.NS)] == [
        saml.PERSISTENT,
        saml.EMAIL,
        saml.TRANSIENT,
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ]
    attributes = {
        e.get("FriendlyName"): e.get("Name")
        for e in idp.xpath("saml:Attribute", namespaces=saml.NS)
    }
    assert attributes == {
        "mail": "urn:oid:0.9.2342.19200300.100.1.3",
        "displayName": "urn:oid:2.16.840.1.113730.3.1.241",
        "givenName": "urn:oid:2.5.4.42",
        "sn": "urn:oid:2.5.4.4",
        "isMemberOf": "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
    }
    with app.app_context():
        _, _, cert_pem = get_key_store().saml_signing_key(clock.now)
    assert certificates(root) == [pem_body(cert_pem)]
    assert OneLogin_Saml2_Utils.validate_metadata_sign(
        response.data, cert_pem, raise_exceptions=True
    )


def test_the_next_certificate_is_published_before_it_signs(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    clock.advance(minutes=-11)  # rotate in the past, so python3-saml's real clock agrees later
    with app.app_context():
        store = get_key_store()
        _, _, active_pem = store.saml_signing_key(clock.now)
        store.rotate(clock.now)
        next_pem = [pem for _, pem in store.saml_certificates(clock.now) if pem != active_pem][0]
    root = etree.fromstring(http.get("/saml/metadata").data)
    assert certificates(root) == [pem_body(active_pem), pem_body(next_pem)]  # active first
    settings = saml.sp_settings(http)  # python3-saml trusts both certificates
    assert len(settings["idp"]["x509certMulti"]["signing"]) == 2
    saml.register(app, settings)
    clock.advance(minutes=11)  # the next key is now the active one
    response, request_id = saml.sso(http, settings)
    form = saml.read_form(response)
    signature_cert = form.xml().xpath("ds:Signature//ds:X509Certificate", namespaces=saml.NS)
    assert "".join(signature_cert[0].text.split()) == pem_body(next_pem)
    sp = saml.process_response(settings, form, request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()


def test_python3_saml_reads_the_metadata(http: FlaskClient) -> None:
    parsed = OneLogin_Saml2_IdPMetadataParser.parse(http.get("/saml/metadata").data.decode())
    idp = parsed["idp"]
    assert idp["entityId"] == saml.IDP_ENTITY_ID
    assert idp["singleSignOnService"] == {"url": saml.SSO_URL, "binding": REDIRECT}
    assert idp["singleLogoutService"]["url"] == saml.IDP_SLO_URL
    assert parsed["sp"]["NameIDFormat"] == saml.PERSISTENT
