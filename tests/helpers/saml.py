"""SAML test helpers: python3-saml as a real SP, hand-made AuthnRequests, the POST form parser."""

from __future__ import annotations

import base64
import copy
import functools
import html
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import func
from sqlalchemy import select

SP_ENTITY_ID = "https://sp.example.com/metadata"
ACS_URL = "https://sp.example.com/acs"
SLO_URL = "https://sp.example.com/slo"
IDP_ENTITY_ID = "http://idp.test/saml/metadata"
SSO_URL = "http://idp.test/saml/sso"
IDP_SLO_URL = "http://idp.test/saml/slo"
IDP_SOAP_SLO_URL = "http://idp.test/saml/slo/soap"

NS = {
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
ACS_BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"


def sp_key_pair(name: str = "sp") -> tuple[str, str]:
    """Return (private key PEM, self-signed certificate PEM) for a test SP, one per name."""
    return _key_pair(name)


@functools.cache
def _key_pair(name: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def sp_settings(
    http: FlaskClient,
    *,
    entity_id: str = SP_ENTITY_ID,
    acs_url: str = ACS_URL,
    slo_url: str = SLO_URL,
    name_id_format: str = PERSISTENT,
    key: str = "sp",
    **security: Any,
) -> dict[str, Any]:
    """Return python3-saml settings for a strict SP configured from our /saml/metadata."""
    metadata = http.get("/saml/metadata")
    assert metadata.status_code == 200, metadata.data[:300]
    idp = OneLogin_Saml2_IdPMetadataParser.parse(metadata.data.decode())
    key_pem, cert_pem = sp_key_pair(key)
    defaults = {
        "authnRequestsSigned": False,
        "logoutRequestSigned": True,
        "logoutResponseSigned": True,
        "wantMessagesSigned": True,
        "wantAssertionsSigned": True,
        "wantAssertionsEncrypted": False,
        "wantNameIdEncrypted": False,
        "signatureAlgorithm": RSA_SHA256,
        "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
        "rejectDeprecatedAlgorithm": True,
    }
    settings = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": entity_id,
            "assertionConsumerService": {"url": acs_url, "binding": ACS_BINDING_POST},
            "singleLogoutService": {
                "url": slo_url,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "NameIDFormat": name_id_format,
            "x509cert": cert_pem,
            "privateKey": key_pem,
        },
        "security": {**defaults, **security},
    }
    merged: dict[str, Any] = OneLogin_Saml2_IdPMetadataParser.merge_settings(settings, idp)
    # The parser copies WantAuthnRequestsSigned over the SP's choice: the SP decides here.
    # https://github.com/SAML-Toolkits/python3-saml/blob/v1.16.0/src/onelogin/saml2/idp_metadata_parser.py#L206-L208
    merged["security"].update(defaults | security)
    merged["sp"]["NameIDFormat"] = name_id_format
    return merged


def sp_metadata(settings: dict[str, Any]) -> bytes:
    """Return the SP metadata python3-saml publishes for ``settings``."""
    saml_settings = OneLogin_Saml2_Settings(copy.deepcopy(settings), sp_validation_only=True)
    metadata = saml_settings.get_sp_metadata()
    return metadata if isinstance(metadata, bytes) else metadata.encode()


def register(app: Flask, settings: dict[str, Any], **options: Any) -> str:
    """Register the SP of ``settings`` from its own metadata; return its entity ID."""
    from idp.saml.registration import register_sp_metadata

    with app.app_context():
        return register_sp_metadata(sp_metadata(settings), **options)


def _request_data(url: str, *, post: dict[str, str] | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    get_data = {}
    if parts.query:
        from urllib.parse import parse_qsl

        get_data = dict(parse_qsl(parts.query, keep_blank_values=True))
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "get_data": get_data,
        "post_data": post or {},
        "query_string": parts.query,
        "validate_signature_from_qs": True,
    }


def sp_auth(settings: dict[str, Any], url: str, *, post: dict[str, str] | None = None) -> Any:
    """Return a python3-saml SP handling a request to ``url`` (with POST fields)."""
    return OneLogin_Saml2_Auth(_request_data(url, post=post), copy.deepcopy(settings))


def login_url(settings: dict[str, Any], **options: Any) -> tuple[str, str]:
    """Have the SP build its AuthnRequest (HTTP-Redirect); return (URL path+query, request ID)."""
    auth = sp_auth(settings, "https://sp.example.com/login")
    url = auth.login(return_to=options.pop("return_to", "/home"), **options)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == SSO_URL
    return f"{parts.path}?{parts.query}", auth.get_last_request_id()


@dataclass
class PostForm:
    action: str
    fields: dict[str, str]
    has_noscript_button: bool

    def xml(self, field: str = "SAMLResponse") -> etree._Element:
        return etree.fromstring(base64.b64decode(self.fields[field]))


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.in_noscript = False
        self.noscript_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form" and self.action is None:
            assert values.get("method") == "post"
            self.action = values.get("action")
        elif tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""
        elif tag == "noscript":
            self.in_noscript = True
        elif tag == "button" and self.in_noscript and values.get("type") == "submit":
            self.noscript_button = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "noscript":
            self.in_noscript = False


def read_form(response: Any) -> PostForm:
    """Parse the IdP's auto-submitting HTTP-POST form."""
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/html"  # browsers run the auto-post script on HTML only
    parser = _FormParser()
    parser.feed(response.data.decode())
    assert parser.action, "no form in the page"
    return PostForm(parser.action, parser.fields, parser.noscript_button)


def process_response(settings: dict[str, Any], form: PostForm, request_id: str | None) -> Any:
    """Hand the POSTed Response to python3-saml at the ACS; return the SP's auth object."""
    auth = sp_auth(settings, form.action, post=form.fields)
    auth.process_response(request_id=request_id)
    return auth


def signed_in(http: FlaskClient, settings: dict[str, Any], **options: Any) -> Any:
    """Sign in at the SP of ``settings``; return python3-saml's auth object holding the session."""
    response, request_id = sso(http, settings, **options)
    auth = process_response(settings, read_form(response), request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    return auth


def logout_url(settings: dict[str, Any], session: Any, **options: Any) -> tuple[str, str]:
    """Have the SP build its signed Redirect LogoutRequest; return (IdP path+query, ID)."""
    auth = sp_auth(settings, "https://sp.example.com/logout")
    url = auth.logout(
        return_to="/bye",
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        name_id_format=session.get_nameid_format(),
        nq=session.get_nameid_nq(),
        spnq=session.get_nameid_spnq(),
        **options,
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == IDP_SLO_URL
    return f"{parts.path}?{parts.query}", auth.get_last_request_id()


def send_logout_request(record: Any) -> Any:
    """Send the browser to the SP of ``record`` with a signed LogoutRequest (Redirect or POST).

    The IdP's own logout reaches SAML SPs by front-channel Redirect URLs only; this drives its
    POST delivery too. None when the SP registered no SingleLogoutService.
    """
    from idp import db
    from idp.saml import LOGOUT_REASON_USER
    from idp.saml import logout
    from idp.saml import responses
    from idp.saml import views

    endpoint = responses.logout_destination(record.sp)
    if endpoint is None:
        return None
    message = logout.build_request_to(record, endpoint, LOGOUT_REASON_USER, db.now())
    return views.deliver(endpoint, "SAMLRequest", message, None)


def sso(http: FlaskClient, settings: dict[str, Any], **options: Any) -> tuple[Any, str]:
    """Send the SP's Redirect AuthnRequest to /saml/sso; return (IdP response, request ID)."""
    path, request_id = login_url(settings, **options)
    return http.get(path), request_id


# -- hand-made messages (hostile input) ---------------------------------------------------------


def now_instant() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def authn_request(
    *,
    issuer: str = SP_ENTITY_ID,
    request_id: str | None = None,
    acs_url: str | None = ACS_URL,
    destination: str | None = SSO_URL,
    issue_instant: str | None = None,
    **attributes: str,
) -> etree._Element:
    """Build an AuthnRequest element as an SP would (unsigned)."""
    root = etree.Element(
        f"{{{NS['samlp']}}}AuthnRequest",
        nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
        ID=request_id or f"_{secrets.token_hex(16)}",
        Version="2.0",
        IssueInstant=issue_instant or now_instant(),
    )
    if destination:
        root.set("Destination", destination)
    if acs_url:
        root.set("AssertionConsumerServiceURL", acs_url)
        root.set("ProtocolBinding", ACS_BINDING_POST)
    for name, value in attributes.items():
        root.set(name, value)
    etree.SubElement(root, f"{{{NS['saml']}}}Issuer").text = issuer
    return root


def logout_request(
    *,
    name_id: str,
    session_index: str | None = None,
    issuer: str = SP_ENTITY_ID,
    request_id: str | None = None,
    destination: str = IDP_SLO_URL,
    **attributes: str,
) -> etree._Element:
    """Build a LogoutRequest element as an SP would (unsigned)."""
    root = etree.Element(
        f"{{{NS['samlp']}}}LogoutRequest",
        nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
        ID=request_id or f"_{secrets.token_hex(16)}",
        Version="2.0",
        IssueInstant=now_instant(),
        Destination=destination,
        **attributes,
    )
    etree.SubElement(root, f"{{{NS['saml']}}}Issuer").text = issuer
    etree.SubElement(root, f"{{{NS['saml']}}}NameID", Format=PERSISTENT).text = name_id
    if session_index is not None:
        etree.SubElement(root, f"{{{NS['samlp']}}}SessionIndex").text = session_index
    return root


def sign_xml(element: etree._Element, key: str = "sp", **options: Any) -> bytes:
    """Sign ``element`` as an SP does (enveloped, python3-saml's add_sign)."""
    key_pem, cert_pem = sp_key_pair(key)
    signed: bytes = OneLogin_Saml2_Utils.add_sign(element, key_pem, cert_pem, **options)
    return signed


def deflate(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def redirect_query(
    xml: bytes,
    *,
    field: str = "SAMLRequest",
    relay_state: str | None = None,
    sign_key: str | None = None,
    sig_alg: str = RSA_SHA256,
) -> str:
    """Return an HTTP-Redirect query string, signed over its raw octets when ``sign_key``."""
    query = f"{field}={quote_plus(deflate(xml))}"
    if relay_state is not None:
        query += f"&RelayState={quote_plus(relay_state)}"
    if sign_key is None:
        return query
    import xmlsec

    query += f"&SigAlg={quote_plus(sig_alg)}"
    transform = {
        RSA_SHA256: xmlsec.constants.TransformRsaSha256,
        RSA_SHA1: xmlsec.constants.TransformRsaSha1,
    }[sig_alg]
    signature = OneLogin_Saml2_Utils.sign_binary(query, sp_key_pair(sign_key)[0], transform)
    return f"{query}&Signature={quote_plus(base64.b64encode(signature).decode())}"


def post_fields(xml: bytes, relay_state: str | None = None) -> dict[str, str]:
    fields = {"SAMLRequest": base64.b64encode(xml).decode()}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return fields


# -- state ---------------------------------------------------------------------------------------


def counts(app: Flask) -> dict[str, int]:
    """Count the rows a SAML request may create: what 'nothing stored' compares."""
    from idp import db
    from idp.models import LoginSession
    from idp.models import ReplayEntry
    from idp.models import SamlPersistentId
    from idp.models import SamlSessionIndex
    from idp.models import ServiceProvider

    with app.app_context():
        session = db.get_session()
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (
                SamlSessionIndex,
                SamlPersistentId,
                ReplayEntry,
                LoginSession,
                ServiceProvider,
            )
        }


def audit_events(app: Flask, event: str) -> list[Any]:
    from idp import db
    from idp.models import AuditEvent

    with app.app_context():
        return list(
            db.get_session().scalars(
                select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
            )
        )


def value(element: etree._Element, path: str) -> str:
    found = element.xpath(path, namespaces=NS)
    assert found, path
    item = found[0]
    return str(item if isinstance(item, str) else item.text)


def assert_refused(app: Flask, response: Any, before: dict[str, int], message: str) -> str:
    """An HTML 400 at the IdP naming the problem, no Response to any ACS, nothing stored.

    Returns the page's text for further checks.
    """
    assert response.status_code == 400, response.data[:300]
    assert response.mimetype == "text/html"
    page = html.unescape(response.data.decode())
    assert message in page, page
    assert 'name="SAMLResponse"' not in page
    assert counts(app) == before
    return page


# -- SOAP back-channel logout (Bindings §3.2) ----------------------------------------------------

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


def metadata_with_soap_slo(settings: dict[str, Any], location: str) -> bytes:
    """Return the SP's metadata with a SOAP SingleLogoutService first (as Shibboleth lists it)."""
    root = etree.fromstring(sp_metadata(settings))
    (descriptor,) = root.xpath("md:SPSSODescriptor", namespaces=NS)
    soap = etree.Element(f"{{{NS['md']}}}SingleLogoutService", Binding=SOAP, Location=location)
    first = descriptor.xpath("md:SingleLogoutService|md:NameIDFormat", namespaces=NS)[0]
    first.addprevious(soap)
    return etree.tostring(root)


def register_soap_sp(app: Flask, settings: dict[str, Any], location: str) -> str:
    """Register the SP of ``settings`` with a SOAP SLO endpoint at ``location``."""
    from idp.saml.registration import register_sp_metadata

    with app.app_context():
        return register_sp_metadata(metadata_with_soap_slo(settings, location))


def soap_envelope(message: bytes) -> bytes:
    """Wrap a SAML message in a SOAP 1.1 envelope, as an SP does."""
    return (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{NS_SOAP}"><SOAP-ENV:Body>'.encode()
        + message
        + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


def soap_message(envelope: bytes) -> etree._Element:
    """Return the one SAML message in a SOAP envelope's Body."""
    root = etree.fromstring(envelope)
    assert root.tag == f"{{{NS_SOAP}}}Envelope"
    (body,) = root.findall(f"{{{NS_SOAP}}}Body")
    (message,) = list(body)
    return message


def soap_logout_answer(status: str = SUCCESS, *, issuer: str = SP_ENTITY_ID) -> Any:
    """Return an SP's answer to a SOAP LogoutRequest: a LogoutResponse with ``status``."""

    def answer(request_envelope: bytes) -> bytes:
        request = soap_message(request_envelope)
        response = etree.Element(
            f"{{{NS['samlp']}}}LogoutResponse",
            nsmap={"samlp": NS["samlp"], "saml": NS["saml"]},
            ID=f"_{secrets.token_hex(16)}",
            Version="2.0",
            IssueInstant=now_instant(),
            InResponseTo=request.get("ID"),
        )
        etree.SubElement(response, f"{{{NS['saml']}}}Issuer").text = issuer
        status_element = etree.SubElement(response, f"{{{NS['samlp']}}}Status")
        etree.SubElement(status_element, f"{{{NS['samlp']}}}StatusCode", Value=status)
        return soap_envelope(etree.tostring(response))

    return answer
