"""Payroll's python3-saml glue: SP settings, the IdP's metadata, a request as python3-saml sees it.

Web Browser SSO and Single Logout over the HTTP-Redirect and HTTP-POST bindings (SAML Profiles
§4.1, §4.4); python3-saml checks signatures, audience, times and InResponseTo. Back-channel
logout over SOAP (Bindings §3.2), which python3-saml lacks, is its parsing and signing, wrapped.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from flask import Flask
from flask import current_app
from flask import request
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from relying_party_demo.common.layout import get_store
from relying_party_demo.payroll.keys import load_sp_keys

METADATA_TIMEOUT_SECONDS = 10
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY_NAME = "urn:oid:2.16.840.1.113730.3.1.241"
# The IdP's attribute names (URI NameFormat) and the friendly names it pairs them with.
FRIENDLY_NAMES = {
    MAIL: "mail",
    DISPLAY_NAME: "displayName",
    "urn:oid:2.5.4.42": "givenName",
    "urn:oid:2.5.4.4": "sn",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": "isMemberOf",
}
REQUIRED_ATTRIBUTES = {"mail", "displayName"}
METADATA_PATH = "/saml/metadata"
SOAP_SLO_PATH = "/saml/soap"
BINDING_SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MAX_SOAP_BYTES = 128 * 1024


class SoapLogoutError(Exception):
    """A SOAP LogoutRequest that is not the IdP's, or not readable: ``str()`` says why."""


def init_app(app: Flask, *, base_url: str, sp_dir: Path, metadata_url: str) -> None:
    """Give ``app`` its SP settings (making the key pair if missing); the IdP's come later."""
    key_pem, cert_pem = load_sp_keys(sp_dir)
    app.extensions["payroll.sp_settings"] = build_sp_settings(base_url, key_pem, cert_pem)
    app.extensions["payroll.idp_lock"] = threading.Lock()
    app.config["IDP_SAML_METADATA_URL"] = metadata_url


def get_auth() -> OneLogin_Saml2_Auth:
    """Return python3-saml's Auth for this request.

    Raises:
        Exception: the IdP's metadata cannot be fetched or read (python3-saml raises many kinds).

    """
    address = urlsplit(current_app.config["PAYROLL_BASE_URL"])
    data = {
        "https": "on" if address.scheme == "https" else "off",
        # Our base URL, not the Host header: Destination checks then do not trust the client.
        "http_host": address.netloc,
        "script_name": request.path,
        "get_data": request.args.to_dict(),
        "post_data": request.form.to_dict(),
        "query_string": request.query_string.decode("latin-1"),
        # Check Redirect-binding signatures over the query string exactly as the IdP sent it.
        "validate_signature_from_qs": True,
    }
    return OneLogin_Saml2_Auth(data, old_settings=saml_settings())


def saml_settings() -> dict[str, Any]:
    """Return the SP settings with the IdP's, fetched from its metadata at first use."""
    # At first use, so Payroll starts (and serves its metadata) before the IdP does.
    app = current_app
    with app.extensions["payroll.idp_lock"]:
        idp = app.extensions.get("payroll.idp")
        if idp is None:
            idp = load_idp_settings(app.config["IDP_SAML_METADATA_URL"])
            app.extensions["payroll.idp"] = idp
    return {**app.extensions["payroll.sp_settings"], "idp": idp}


def user_from(auth: OneLogin_Saml2_Auth) -> dict[str, Any]:
    """Return the user to keep from the Response ``auth`` has accepted."""
    attributes = {name: list(values) for name, values in auth.get_attributes().items()}
    friendly = auth.get_friendlyname_attributes()
    mail = attributes.get(MAIL) or friendly.get("mail") or []
    display = attributes.get(DISPLAY_NAME) or friendly.get("displayName") or []
    return {
        "name_id": auth.get_nameid(),
        "name_id_format": auth.get_nameid_format(),
        "name_id_nq": auth.get_nameid_nq(),
        "name_id_spnq": auth.get_nameid_spnq(),
        "session_index": auth.get_session_index(),
        "issuer": auth.get_settings().get_idp_data()["entityId"],
        "email": mail[0] if mail else auth.get_nameid(),
        "name": display[0] if display else None,
        "attributes": attributes,
    }


def end_sessions_named_in(logout_request: str) -> int:
    """End every local session the IdP's LogoutRequest names (SAML Core §3.7.3.2); say how many."""
    indexes = set(OneLogin_Saml2_Logout_Request.get_session_indexes(logout_request))
    name_id = OneLogin_Saml2_Logout_Request.get_nameid(logout_request)

    def named(data: Mapping[str, Any]) -> bool:
        user = data.get("user")
        if not isinstance(user, dict) or user.get("name_id") != name_id:
            return False
        return not indexes or user.get("session_index") in indexes

    return get_store(current_app).end_where(named)


def sp_metadata(sp_settings: Mapping[str, Any]) -> str:
    """Return the SP metadata python3-saml builds from ``sp_settings``.

    Raises:
        OneLogin_Saml2_Error: the settings give invalid metadata.

    """
    saml = OneLogin_Saml2_Settings(dict(sp_settings), sp_validation_only=True)
    xml = with_soap_slo(saml.get_sp_metadata(), sp_settings)
    errors = saml.validate_metadata(xml)
    if errors:
        raise OneLogin_Saml2_Error(f"invalid SP metadata: {', '.join(errors)}")
    text: str = xml.decode() if isinstance(xml, bytes) else xml
    return text


def with_soap_slo(xml: str | bytes, sp_settings: Mapping[str, Any]) -> bytes:
    """Add the SOAP SingleLogoutService python3-saml cannot describe, first of the SLO list."""
    root = OneLogin_Saml2_XML.to_etree(xml)
    base_url = str(sp_settings["sp"]["entityId"]).removesuffix(METADATA_PATH)
    descriptor = root.find(f"{{{NS_MD}}}SPSSODescriptor")
    first = descriptor.find(f"{{{NS_MD}}}SingleLogoutService")
    soap = root.makeelement(
        f"{{{NS_MD}}}SingleLogoutService",
        {"Binding": BINDING_SOAP, "Location": base_url + SOAP_SLO_PATH},
    )
    first.addprevious(soap)
    data: bytes = OneLogin_Saml2_XML.to_string(root)
    return data


def answer_soap_logout(envelope: bytes) -> bytes:
    """End the local sessions an IdP's signed SOAP LogoutRequest names; return the answer.

    python3-saml has no SOAP binding: its parser, validator and signature check do the work.

    Raises:
        SoapLogoutError: not a SOAP envelope with a LogoutRequest the IdP signed for us.

    """
    if len(envelope) > MAX_SOAP_BYTES:
        raise SoapLogoutError("The SOAP message is too large.")
    try:
        root = OneLogin_Saml2_XML.to_etree(envelope)  # no DTD, no entities
    except Exception:  # python3-saml raises several kinds for hostile XML
        raise SoapLogoutError("The SOAP message is not well-formed XML.") from None
    body = root.find(f"{{{NS_SOAP}}}Body") if root.tag == f"{{{NS_SOAP}}}Envelope" else None
    messages = [child for child in body if isinstance(child.tag, str)] if body is not None else []
    if len(messages) != 1:
        raise SoapLogoutError("Expected a SOAP envelope with one LogoutRequest.")
    request_xml = OneLogin_Saml2_XML.to_string(messages[0])
    settings = OneLogin_Saml2_Settings(saml_settings())
    idp = settings.get_idp_data()
    certificates = idp.get("x509certMulti", {}).get("signing") or [idp["x509cert"]]
    # The signature must cover the LogoutRequest itself: python3-saml's validate_sign does not
    # look at the Reference, so a signature over another element would pass (XSW).
    references = OneLogin_Saml2_XML.query(messages[0], "./ds:Signature/ds:SignedInfo/ds:Reference")
    if len(references) != 1 or references[0].get("URI") != f"#{messages[0].get('ID')}":
        raise SoapLogoutError("The LogoutRequest is not signed by the identity provider.")
    if not any(
        OneLogin_Saml2_Utils.validate_sign(
            request_xml, cert, xpath="/samlp:LogoutRequest/ds:Signature", raise_exceptions=False
        )
        for cert in certificates
    ):
        raise SoapLogoutError("The LogoutRequest is not signed by the identity provider.")
    logout_request = OneLogin_Saml2_Logout_Request(settings, base64.b64encode(request_xml).decode())
    address = urlsplit(current_app.config["PAYROLL_BASE_URL"])
    here = {
        "https": "on" if address.scheme == "https" else "off",
        "http_host": address.netloc,
        "script_name": SOAP_SLO_PATH,
        "get_data": {},
        "post_data": {},
    }
    # Schema, Issuer, Destination and NotOnOrAfter (strict mode).
    if not logout_request.is_valid(here):
        raise SoapLogoutError(f"The LogoutRequest was refused: {logout_request.get_error()}")
    ended = end_sessions_named_in(request_xml)
    current_app.logger.info("SOAP logout ended %d session(s)", ended)
    response = OneLogin_Saml2_Logout_Response(settings)
    response.build(OneLogin_Saml2_Logout_Request.get_id(request_xml))
    sp = settings.get_sp_data()
    signed = OneLogin_Saml2_Utils.add_sign(
        response.get_xml(),
        sp["privateKey"],
        sp["x509cert"],
        sign_algorithm=settings.get_security_data()["signatureAlgorithm"],
        digest_algorithm=settings.get_security_data()["digestAlgorithm"],
    )
    return soap_envelope(signed)


def soap_envelope(message: bytes) -> bytes:
    """Wrap a SAML message in a SOAP 1.1 envelope (Bindings §3.2.3)."""
    return (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{NS_SOAP}"><SOAP-ENV:Body>'.encode()
        + message
        + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


def soap_fault(reason: str) -> bytes:
    """Return a SOAP 1.1 Client fault saying ``reason``."""
    fault = (
        "<SOAP-ENV:Fault><faultcode>SOAP-ENV:Client</faultcode>"
        f"<faultstring>{escape(reason)}</faultstring></SOAP-ENV:Fault>"
    )
    return soap_envelope(fault.encode())


def build_sp_settings(base_url: str, key_pem: str, cert_pem: str) -> dict[str, Any]:
    """Return python3-saml settings for the SP alone (no ``idp`` part yet)."""
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": base_url + "/saml/metadata",
            "assertionConsumerService": {
                "url": base_url + "/saml/acs",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
            },
            "singleLogoutService": {
                "url": base_url + "/saml/sls",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_PERSISTENT,
            "x509cert": cert_pem,
            "privateKey": key_pem,
            "attributeConsumingService": {
                "serviceName": "Payroll",
                "serviceDescription": "Payroll demo app",
                "requestedAttributes": [
                    {
                        "name": uri,
                        "friendlyName": friendly,
                        "nameFormat": OneLogin_Saml2_Constants.ATTRNAME_FORMAT_URI,
                        "isRequired": friendly in REQUIRED_ATTRIBUTES,
                    }
                    for uri, friendly in FRIENDLY_NAMES.items()
                ],
            },
        },
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "wantAssertionsEncrypted": False,
            "wantNameIdEncrypted": False,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "signMetadata": False,
            "rejectDeprecatedAlgorithm": True,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
        },
    }


def load_idp_settings(metadata_url: str) -> dict[str, Any]:
    """Fetch the IdP's metadata and return its python3-saml ``idp`` settings.

    Raises:
        ValueError: the metadata names no IdP with a Redirect-binding SSO location.
        OSError: the metadata cannot be fetched.

    """
    data = OneLogin_Saml2_IdPMetadataParser.parse_remote(
        metadata_url, timeout=METADATA_TIMEOUT_SECONDS
    )
    idp = data.get("idp") if isinstance(data, Mapping) else None
    if not isinstance(idp, dict) or not idp.get("singleSignOnService", {}).get("url"):
        raise ValueError(f"{metadata_url} names no IdP SSO location (HTTP-Redirect binding)")
    return idp
