"""SAML metadata: the IdP's EntityDescriptor out, SP EntityDescriptors in (SAML Metadata 2.0).

Also the endpoint choices SAML Metadata §2.2.3 describes (default ACS, SLO binding), pure.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from idp.attributes import ATTRIBUTES
from idp.attributes import URI_NAME_FORMAT
from idp.errors import InvalidInputError
from idp.errors import SamlRequestError
from idp.saml import BINDING_POST
from idp.saml import BINDING_REDIRECT
from idp.saml import BINDING_SOAP
from idp.saml import NAMEID_EMAIL
from idp.saml import NAMEID_FORMATS
from idp.saml import NAMEID_PERSISTENT
from idp.saml import NAMEID_UNSPECIFIED
from idp.saml import NS_DS
from idp.saml import NS_MD
from idp.saml import NS_SAML
from idp.saml import PROTOCOL
from idp.saml.requests import METADATA_SCHEMA
from idp.saml.requests import format_instant
from idp.saml.requests import parse_boolean
from idp.saml.requests import parse_instant
from idp.saml.requests import parse_xml
from idp.uris import is_loopback

# SPs that honour validUntil refetch at least this often; cacheDuration is shorter.
METADATA_VALID_FOR: Final = timedelta(days=7)
MAX_METADATA_BYTES: Final = 512 * 1024
MAX_LOCATION_LENGTH: Final = 1024
DELIVERY_BINDINGS: Final = (BINDING_REDIRECT, BINDING_POST)
# SOAP (Bindings §3.2) is the back channel: LogoutRequests reach the SP without the browser.
SLO_BINDINGS: Final = (*DELIVERY_BINDINGS, BINDING_SOAP)
# The claim (idp.attributes) behind the SAML ``mail`` attribute.
MAIL_CLAIM: Final = "email"


def _md(name: str) -> str:
    return f"{{{NS_MD}}}{name}"


def _ds(name: str) -> str:
    return f"{{{NS_DS}}}{name}"


# -- IdP metadata out ---------------------------------------------------------------------------


def idp_entity_id(issuer: str) -> str:
    """Return the IdP's entity ID: its metadata URL, so the ID itself says where to look."""
    return f"{issuer}/saml/metadata"


def sso_url(issuer: str) -> str:
    return f"{issuer}/saml/sso"


def slo_url(issuer: str) -> str:
    return f"{issuer}/saml/slo"


def soap_slo_url(issuer: str) -> str:
    return f"{issuer}/saml/slo/soap"


def _certificate_body(pem: str) -> str:
    body: str = OneLogin_Saml2_Utils.format_cert(pem, heads=False)
    return body


def build_idp_metadata(
    *, issuer: str, certificates: Sequence[str], cache_duration: timedelta, now: datetime
) -> etree._Element:
    """Build the IdP's unsigned EntityDescriptor (SAML Metadata §2.4.3).

    ``certificates`` are PEM, the active one first; during a rollover the next one is listed
    too, so SPs trust it before it signs.
    """
    root = etree.Element(
        _md("EntityDescriptor"),
        nsmap={"md": NS_MD, "ds": NS_DS, "saml": NS_SAML},
        entityID=idp_entity_id(issuer),
        ID=OneLogin_Saml2_Utils.generate_unique_id(),
        validUntil=format_instant(now + METADATA_VALID_FOR),
        cacheDuration=f"PT{int(cache_duration.total_seconds())}S",
    )
    idp = etree.SubElement(
        root,
        _md("IDPSSODescriptor"),
        protocolSupportEnumeration=PROTOCOL,
        WantAuthnRequestsSigned="false",
    )
    for pem in certificates:
        descriptor = etree.SubElement(idp, _md("KeyDescriptor"), use="signing")
        key_info = etree.SubElement(descriptor, _ds("KeyInfo"))
        data = etree.SubElement(key_info, _ds("X509Data"))
        etree.SubElement(data, _ds("X509Certificate")).text = _certificate_body(pem)
    for binding in DELIVERY_BINDINGS:
        etree.SubElement(idp, _md("SingleLogoutService"), Binding=binding, Location=slo_url(issuer))
    etree.SubElement(
        idp, _md("SingleLogoutService"), Binding=BINDING_SOAP, Location=soap_slo_url(issuer)
    )
    for name_id_format in NAMEID_FORMATS:
        etree.SubElement(idp, _md("NameIDFormat")).text = name_id_format
    for binding in DELIVERY_BINDINGS:
        etree.SubElement(idp, _md("SingleSignOnService"), Binding=binding, Location=sso_url(issuer))
    for attribute in ATTRIBUTES:
        if attribute.saml_name is None:
            continue
        offered = etree.SubElement(
            idp, f"{{{NS_SAML}}}Attribute", Name=attribute.saml_name, NameFormat=URI_NAME_FORMAT
        )
        if attribute.saml_friendly_name:
            offered.set("FriendlyName", attribute.saml_friendly_name)
    return root


# -- SP metadata in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpMetadata:
    """What an SP's metadata says, checked (SAML Metadata §2.4.4)."""

    entity_id: str
    name: str
    acs_endpoints: list[dict[str, Any]]
    slo_endpoints: list[dict[str, Any]]
    signing_certificates: list[str]
    encryption_certificates: list[str]
    authn_requests_signed: bool
    want_assertions_signed: bool
    name_id_formats: list[str]
    # A key published with use="encryption" asks for encrypted assertions (Shibboleth's rule).
    wants_encryption: bool
    xml: str


def _check_location(location: str | None, what: str) -> str:
    if not location or len(location) > MAX_LOCATION_LENGTH:
        raise InvalidInputError(f"SP metadata: {what} has no usable Location")
    parts = urlsplit(location)
    # Assertions are bearer credentials: never over plain HTTP except to this machine.
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return location
    if parts.scheme != "https" or not parts.hostname or parts.fragment:
        raise InvalidInputError(
            f"SP metadata: {what} must be an https URL (http only on loopback): {location[:200]}"
        )
    return location


def _certificate_pem(text: str | None) -> str:
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        certificate = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            "SP metadata: a KeyDescriptor holds no valid X.509 certificate"
        ) from None
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _display_name(entity: etree._Element, sp: etree._Element, entity_id: str) -> str:
    mdui = "urn:oasis:names:tc:SAML:metadata:ui"
    xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
    names = sp.findall(f"{_md('Extensions')}/{{{mdui}}}UIInfo/{{{mdui}}}DisplayName")
    names += entity.findall(f"{_md('Organization')}/{_md('OrganizationDisplayName')}")
    names.sort(key=lambda element: element.get(xml_lang) != "en")
    for element in names:
        if (element.text or "").strip():
            return (element.text or "").strip()[:200]
    return entity_id[:200]


def parse_sp_metadata(data: bytes, now: datetime) -> SpMetadata:
    """Parse and check an SP's metadata (one EntityDescriptor with an SPSSODescriptor).

    Raises:
        InvalidInputError: the metadata is hostile, malformed, expired or unusable.

    """
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidInputError("SP metadata: the file is too large")
    try:
        root = parse_xml(data, METADATA_SCHEMA)
    except SamlRequestError as error:
        raise InvalidInputError(f"SP metadata: {error}") from None
    if root.tag == _md("EntitiesDescriptor"):
        entities = root.findall(f".//{_md('EntityDescriptor')}")
        if len(entities) != 1:
            raise InvalidInputError("SP metadata: give one EntityDescriptor, not an aggregate")
        entity = entities[0]
    elif root.tag == _md("EntityDescriptor"):
        entity = root
    else:
        raise InvalidInputError("SP metadata: the root is not an EntityDescriptor")
    for element in (root, entity):
        valid_until = element.get("validUntil")
        try:
            expired = valid_until is not None and parse_instant(valid_until) <= now
        except SamlRequestError:
            raise InvalidInputError("SP metadata: validUntil is malformed") from None
        if expired:
            raise InvalidInputError("SP metadata: it expired (validUntil is in the past)")
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > 1024:
        raise InvalidInputError("SP metadata: the entityID is missing or too long")
    descriptors = [
        element
        for element in entity.findall(_md("SPSSODescriptor"))
        if PROTOCOL in (element.get("protocolSupportEnumeration") or "").split()
    ]
    if len(descriptors) != 1:
        raise InvalidInputError("SP metadata: expected one SAML 2.0 SPSSODescriptor")
    sp = descriptors[0]
    acs = []
    for element in sp.findall(_md("AssertionConsumerService")):
        if element.get("Binding") != BINDING_POST:
            continue  # responses are delivered by HTTP-POST only (Profiles §4.1.2)
        is_default = element.get("isDefault")
        acs.append(
            {
                "binding": BINDING_POST,
                "location": _check_location(element.get("Location"), "AssertionConsumerService"),
                "index": int(element.get("index") or 0),
                "is_default": None if is_default is None else parse_boolean(is_default),
            }
        )
    if not acs:
        raise InvalidInputError("SP metadata: no AssertionConsumerService with HTTP-POST binding")
    slo = []
    for element in sp.findall(_md("SingleLogoutService")):
        if element.get("Binding") not in SLO_BINDINGS:
            continue
        response_location = element.get("ResponseLocation")
        slo.append(
            {
                "binding": element.get("Binding"),
                "location": _check_location(element.get("Location"), "SingleLogoutService"),
                "response_location": (
                    _check_location(response_location, "SingleLogoutService")
                    if response_location
                    else None
                ),
            }
        )
    signing: list[str] = []
    encryption: list[str] = []
    wants_encryption = False
    for descriptor in sp.findall(_md("KeyDescriptor")):
        use = descriptor.get("use")
        for text in descriptor.iterfind(
            f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}"
        ):
            pem = _certificate_pem(text.text)
            if use in (None, "signing") and pem not in signing:
                signing.append(pem)
            if use in (None, "encryption") and pem not in encryption:
                encryption.append(pem)
            wants_encryption = wants_encryption or use == "encryption"
    formats = [
        (element.text or "").strip()
        for element in sp.findall(_md("NameIDFormat"))
        if (element.text or "").strip()
    ]
    return SpMetadata(
        entity_id=entity_id,
        name=_display_name(entity, sp, entity_id),
        acs_endpoints=acs,
        slo_endpoints=slo,
        signing_certificates=signing,
        encryption_certificates=encryption,
        authn_requests_signed=parse_boolean(sp.get("AuthnRequestsSigned")),
        want_assertions_signed=parse_boolean(sp.get("WantAssertionsSigned")),
        name_id_formats=formats,
        wants_encryption=wants_encryption,
        xml=data.decode("utf-8", errors="replace"),
    )


def issuable_name_id_formats(released: Sequence[str] | None) -> tuple[str, ...]:
    """Return the NameID formats the IdP can issue to an SP releasing ``released`` claims.

    emailAddress and unspecified carry the e-mail address: only where ``mail`` is released,
    or the NameID would hand out what the operator chose to withhold.
    """
    if released is None or MAIL_CLAIM in released:
        return NAMEID_FORMATS
    return tuple(item for item in NAMEID_FORMATS if item not in (NAMEID_EMAIL, NAMEID_UNSPECIFIED))


def default_name_id_format(formats: Sequence[str], released: Sequence[str] | None) -> str:
    """Return the first listed format the IdP can issue to the SP, else persistent."""
    issuable = issuable_name_id_formats(released)
    return next((item for item in formats if item in issuable), NAMEID_PERSISTENT)


# -- endpoint choices ---------------------------------------------------------------------------


def select_acs(
    endpoints: Sequence[dict[str, Any]],
    *,
    url: str | None = None,
    index: int | None = None,
    binding: str | None = None,
) -> str:
    """Return the ACS URL to answer at, chosen from the SP's metadata only (Profiles §4.1.4.1).

    Raises:
        SamlRequestError: the URL, index or binding asked for is not in the metadata.

    """
    if binding is not None and binding != BINDING_POST:
        raise SamlRequestError("Only the HTTP-POST binding is supported for responses.")
    if index is not None:
        for endpoint in endpoints:
            if endpoint["index"] == index:
                return str(endpoint["location"])
        raise SamlRequestError("The AssertionConsumerServiceIndex is not in the SP's metadata.")
    if url is not None:
        for endpoint in endpoints:
            if endpoint["location"] == url:
                return url
        raise SamlRequestError("The AssertionConsumerServiceURL is not in the SP's metadata.")
    # SAML Metadata §2.2.3: isDefault="true", else the first not marked false, else the first.
    for endpoint in endpoints:
        if endpoint["is_default"] is True:
            return str(endpoint["location"])
    for endpoint in endpoints:
        if endpoint["is_default"] is None:
            return str(endpoint["location"])
    return str(endpoints[0]["location"])


def select_slo(
    endpoints: Sequence[dict[str, Any]], preferred: str | None = None
) -> dict[str, Any] | None:
    """Return the SLO endpoint to use: the ``preferred`` binding, else Redirect, else POST."""
    for binding in (preferred, BINDING_REDIRECT, BINDING_POST):
        for endpoint in endpoints:
            if endpoint["binding"] == binding:
                return endpoint
    return None
