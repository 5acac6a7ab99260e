"""Signed AuthnRequests: Redirect over the raw query octets, POST enveloped; forgeries refused."""

from __future__ import annotations

import base64
import copy
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import TestUser
from tests.helpers import saml


@pytest.fixture
def signing_sp(app: Flask, http: FlaskClient) -> dict[str, Any]:
    """An SP whose metadata says AuthnRequestsSigned="true"."""
    settings = saml.sp_settings(http, authnRequestsSigned=True)
    saml.register(app, settings)
    return settings


def accepted(settings: dict[str, Any], response: Any, request_id: str) -> None:
    auth = saml.process_response(settings, saml.read_form(response), request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()


def test_a_signed_redirect_request_is_accepted(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    path, request_id = saml.login_url(signing_sp)
    assert "&Signature=" in path and "&SigAlg=" in path
    accepted(signing_sp, http.get(path), request_id)


def test_an_unsigned_request_is_refused_when_the_sp_signs(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request())
    response = http.get(f"/saml/sso?{saml.redirect_query(xml)}")
    saml.assert_refused(app, response, before, "must be signed")
    response = http.post("/saml/sso", data=saml.post_fields(xml))
    saml.assert_refused(app, response, before, "must be signed")


def test_a_tampered_redirect_query_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    path, _ = saml.login_url(signing_sp, return_to="/home")
    assert "RelayState=%2Fhome" in path
    response = http.get(path.replace("RelayState=%2Fhome", "RelayState=%2Fevil"))
    saml.assert_refused(app, response, before, "does not verify")


def test_a_redirect_signature_by_another_key_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request())
    response = http.get(f"/saml/sso?{saml.redirect_query(xml, sign_key='attacker')}")
    saml.assert_refused(app, response, before, "does not verify")


def test_a_sha1_redirect_signature_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request())
    query = saml.redirect_query(xml, sign_key="sp", sig_alg=saml.RSA_SHA1)
    saml.assert_refused(app, http.get(f"/saml/sso?{query}"), before, "algorithm is not accepted")


def test_a_signed_post_request_is_accepted(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    request = saml.authn_request()
    response = http.post("/saml/sso", data=saml.post_fields(saml.sign_xml(request)))
    accepted(signing_sp, response, request.get("ID"))


def test_a_sha1_post_signature_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    signed = saml.sign_xml(
        saml.authn_request(), sign_algorithm=saml.RSA_SHA1, digest_algorithm=saml.SHA1
    )
    response = http.post("/saml/sso", data=saml.post_fields(signed))
    saml.assert_refused(app, response, before, "algorithm is not accepted")


def test_a_sha256_signature_over_a_sha1_digest_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    signed = saml.sign_xml(saml.authn_request(), digest_algorithm=saml.SHA1)
    response = http.post("/saml/sso", data=saml.post_fields(signed))
    saml.assert_refused(app, response, before, "algorithm is not accepted")


def test_a_post_signature_by_another_key_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    signed = saml.sign_xml(saml.authn_request(), key="attacker")
    response = http.post("/saml/sso", data=saml.post_fields(signed))
    saml.assert_refused(app, response, before, "does not verify")


def test_a_post_request_altered_after_signing_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    signed = saml.sign_xml(saml.authn_request(ForceAuthn="false"))
    altered = signed.replace(b'ForceAuthn="false"', b'ForceAuthn="true"')
    assert altered != signed
    response = http.post("/saml/sso", data=saml.post_fields(altered))
    saml.assert_refused(app, response, before, "does not verify")


def _extensions(root: etree._Element, **attributes: str) -> etree._Element:
    """Add samlp:Extensions holding a foreign element (schema-valid: ##other, lax)."""
    extensions = etree.Element(f"{{{saml.NS['samlp']}}}Extensions")
    signature = root.find(f"{{{saml.NS['ds']}}}Signature")
    anchor = signature if signature is not None else root.find(f"{{{saml.NS['saml']}}}Issuer")
    anchor.addnext(extensions)  # schema order: Issuer, Signature, Extensions
    return etree.SubElement(extensions, "{urn:example:attacker}Wrapper", **attributes)


def test_signature_wrapping_with_a_new_root_id_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    """The genuine signed request hides in Extensions; the evil root carries its signature."""
    before = saml.counts(app)
    genuine = etree.fromstring(saml.sign_xml(saml.authn_request(request_id="_genuine")))
    evil = saml.authn_request(request_id="_evil", ForceAuthn="true")
    signature = genuine.find(f"{{{saml.NS['ds']}}}Signature")
    genuine.remove(signature)
    evil.find(f"{{{saml.NS['saml']}}}Issuer").addnext(signature)
    # xmlsec alone accepts this: the signature covers #_genuine, which is in the document
    # and unchanged (the enveloped transform removed the signature before digesting it).
    _extensions(evil).append(genuine)
    response = http.post("/saml/sso", data=saml.post_fields(etree.tostring(evil)))
    saml.assert_refused(app, response, before, "must cover the whole message")


def test_signature_wrapping_with_a_duplicated_id_is_refused(
    app: Flask, http: FlaskClient, signing_sp: dict[str, Any], logged_in: TestUser
) -> None:
    """The evil root reuses the genuine ID; the genuine request hides in Extensions."""
    before = saml.counts(app)
    genuine = etree.fromstring(saml.sign_xml(saml.authn_request(request_id="_same")))
    signature = genuine.find(f"{{{saml.NS['ds']}}}Signature")
    evil = saml.authn_request(request_id="_same", ForceAuthn="true")
    evil.find(f"{{{saml.NS['saml']}}}Issuer").addnext(copy.deepcopy(signature))
    # An element with the genuine ID next to the evil root, holding the genuine content.
    hidden = _extensions(evil, ID="_same")
    for child in genuine:
        if child.tag != signature.tag:
            hidden.append(copy.deepcopy(child))
    response = http.post("/saml/sso", data=saml.post_fields(etree.tostring(evil)))
    saml.assert_refused(app, response, before, "must cover the whole message")


def test_a_signature_is_verified_even_when_not_required(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    signed = saml.sign_xml(saml.authn_request(), key="attacker")
    response = http.post("/saml/sso", data=saml.post_fields(signed))
    saml.assert_refused(app, response, before, "does not verify")


def test_an_ecdsa_redirect_signature_is_accepted(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    """ECDSA-SHA256 over the raw query octets, the signature as XML DSig's r || s."""
    from urllib.parse import quote_plus

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec-sp.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    ec_body = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    settings = saml.sp_settings(http)
    rsa_body = "".join(line for line in saml.sp_key_pair()[1].splitlines() if "-----" not in line)
    metadata = saml.sp_metadata(settings).decode().replace(rsa_body, ec_body)
    assert ec_body in metadata
    with app.app_context():
        from idp.saml.registration import register_sp_metadata

        register_sp_metadata(metadata.encode(), encrypt_assertion=False)

    def signed_query(der: bool) -> str:
        request = saml.authn_request()
        query = saml.redirect_query(etree.tostring(request))
        query += "&SigAlg=" + quote_plus("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256")
        signature = key.sign(query.encode(), ec.ECDSA(hashes.SHA256()))
        if not der:
            r, s = decode_dss_signature(signature)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{query}&Signature={quote_plus(base64.b64encode(signature).decode())}"

    accepted_form = saml.read_form(http.get(f"/saml/sso?{signed_query(der=False)}"))
    assert accepted_form.action == saml.ACS_URL
    before = saml.counts(app)
    # ASN.1 DER is not the XML Signature encoding of an ECDSA value: refused, not guessed.
    saml.assert_refused(
        app, http.get(f"/saml/sso?{signed_query(der=True)}"), before, "does not verify"
    )
