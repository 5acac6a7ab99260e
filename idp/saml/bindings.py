"""HTTP-Redirect, HTTP-POST and SOAP bindings (SAML Bindings §3.4, §3.5, §3.2): pure codecs.

Hostile input stops here: size-capped inflate, strict base64, one value per parameter, a
RelayState of at most 80 bytes (Bindings §3.4.3, §3.5.3), SOAP envelopes without DTDs.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote_plus
from urllib.parse import unquote_plus

from lxml import etree
from onelogin.saml2 import xmlparser
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from idp.errors import SamlRequestError
from idp.saml import BINDING_POST
from idp.saml import BINDING_REDIRECT
from idp.saml import NS_SOAP_ENV

# Real AuthnRequests and LogoutRequests are a few KiB; anything that inflates past this is a
# deflate bomb, refused before the XML parser sees a byte.
MAX_XML_BYTES: Final = 128 * 1024
MAX_ENCODED_BYTES: Final = MAX_XML_BYTES * 4 // 3 + 4
# Bindings §3.4.3: "The value MUST NOT exceed 80 bytes in length".
MAX_RELAY_STATE_BYTES: Final = 80

MESSAGE_FIELDS: Final = ("SAMLRequest", "SAMLResponse")


@dataclass(frozen=True)
class InboundMessage:
    """A protocol message as received, before its XML is parsed."""

    binding: str
    field: str  # "SAMLRequest" or "SAMLResponse"
    xml: bytes
    relay_state: str | None
    # HTTP-Redirect only: the detached signature and the exact octets it covers.
    sig_alg: str | None = None
    signature: bytes | None = None
    signed_octets: bytes | None = None


def validate_relay_state(relay_state: str | None) -> None:
    """Refuse a RelayState longer than 80 bytes (Bindings §3.4.3).

    Raises:
        SamlRequestError: it is too long.

    """
    if relay_state is not None and len(relay_state.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
        raise SamlRequestError("The RelayState is longer than 80 bytes.")


def b64decode(value: str) -> bytes:
    """Decode strict base64, ignoring the line breaks some SPs insert.

    Raises:
        SamlRequestError: not base64, or too long.

    """
    compact = "".join(value.split())
    if len(compact) > MAX_ENCODED_BYTES:
        raise SamlRequestError("The SAML message is too large.")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise SamlRequestError("The SAML message is not valid base64.") from None


def inflate(data: bytes, limit: int = MAX_XML_BYTES) -> bytes:
    """Inflate raw DEFLATE data (RFC 1951), refusing output past ``limit`` bytes.

    Raises:
        SamlRequestError: not DEFLATE data, truncated, or it inflates past the limit.

    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise SamlRequestError("The SAML message is not valid DEFLATE data.") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise SamlRequestError("The SAML message is too large.")
    if not inflater.eof:
        raise SamlRequestError("The SAML message is not valid DEFLATE data.")
    return inflated


def _raw_query_values(query_string: bytes) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for part in query_string.split(b"&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition(b"=")
        try:
            name = unquote_plus(raw_name.decode("ascii"), errors="strict")
        except UnicodeDecodeError:
            raise SamlRequestError("The query string is malformed.") from None
        if name in values:
            raise SamlRequestError(f"The {name} parameter is repeated.")
        values[name] = raw_value
    return values


def _decoded(raw: bytes) -> str:
    try:
        return unquote_plus(raw.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        raise SamlRequestError("The query string is malformed.") from None


def decode_redirect(query_string: bytes) -> InboundMessage:
    """Decode an HTTP-Redirect message from the raw query string (Bindings §3.4.4).

    The signature, when present, covers ``SAMLRequest=…&RelayState=…&SigAlg=…`` exactly as
    the octets arrived, never as re-encoded here (§3.4.4.1).

    Raises:
        SamlRequestError: the message is missing, repeated, too large or not encoded right.

    """
    raw = _raw_query_values(query_string)
    present = [name for name in MESSAGE_FIELDS if name in raw]
    if len(present) != 1:
        raise SamlRequestError("Send exactly one SAMLRequest or SAMLResponse.")
    field = present[0]
    relay_state = _decoded(raw["RelayState"]) if "RelayState" in raw else None
    validate_relay_state(relay_state)
    xml = inflate(b64decode(_decoded(raw[field])))
    if "Signature" not in raw:
        return InboundMessage(BINDING_REDIRECT, field, xml, relay_state)
    if "SigAlg" not in raw:
        raise SamlRequestError("The signature has no SigAlg.")
    signed = [f"{field}=".encode() + raw[field]]
    if "RelayState" in raw:
        signed.append(b"RelayState=" + raw["RelayState"])
    signed.append(b"SigAlg=" + raw["SigAlg"])
    return InboundMessage(
        binding=BINDING_REDIRECT,
        field=field,
        xml=xml,
        relay_state=relay_state,
        sig_alg=_decoded(raw["SigAlg"]),
        signature=b64decode(_decoded(raw["Signature"])),
        signed_octets=b"&".join(signed),
    )


def decode_post(form: Mapping[str, Sequence[str]]) -> InboundMessage:
    """Decode an HTTP-POST message from its form fields (Bindings §3.5.4).

    Raises:
        SamlRequestError: the message is missing, repeated, too large or not base64.

    """
    for name in (*MESSAGE_FIELDS, "RelayState"):
        if len(form.get(name, ())) > 1:
            raise SamlRequestError(f"The {name} parameter is repeated.")
    present = [name for name in MESSAGE_FIELDS if form.get(name)]
    if len(present) != 1:
        raise SamlRequestError("Send exactly one SAMLRequest or SAMLResponse.")
    field = present[0]
    relay_states = form.get("RelayState", ())
    relay_state = relay_states[0] if relay_states else None
    validate_relay_state(relay_state)
    xml = b64decode(form[field][0])
    if len(xml) > MAX_XML_BYTES:
        raise SamlRequestError("The SAML message is too large.")
    return InboundMessage(BINDING_POST, field, xml, relay_state)


def encode_post(xml: bytes) -> str:
    """Return the base64 form value of an HTTP-POST message (Bindings §3.5.4)."""
    return base64.b64encode(xml).decode("ascii")


def encode_redirect(
    location: str,
    field: str,
    xml: bytes,
    relay_state: str | None,
    sig_alg: str,
    sign: Callable[[bytes], bytes],
) -> str:
    """Return the signed HTTP-Redirect URL of a message (Bindings §3.4.4.1)."""
    encoded: str = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
    parts = [f"{field}={quote_plus(encoded)}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote_plus(relay_state)}")
    parts.append(f"SigAlg={quote_plus(sig_alg)}")
    query = "&".join(parts)
    signature = base64.b64encode(sign(query.encode("ascii"))).decode("ascii")
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}{query}&Signature={quote_plus(signature)}"


# -- SOAP 1.1 (Bindings §3.2) -------------------------------------------------------------------

SOAP_CONTENT_TYPE: Final = "text/xml; charset=utf-8"
# Bindings §3.2.2.3: "the SOAPAction HTTP header ... with a value of
# http://www.oasis-open.org/committees/security".
SOAP_ACTION: Final = "http://www.oasis-open.org/committees/security"
SOAP_HEADERS: Final = {"Content-Type": SOAP_CONTENT_TYPE, "SOAPAction": SOAP_ACTION}


def _soap(name: str) -> str:
    return f"{{{NS_SOAP_ENV}}}{name}"


def encode_soap(message: etree._Element) -> bytes:
    """Return ``message`` as the one child of a SOAP 1.1 Body (Bindings §3.2.3)."""
    envelope = etree.Element(_soap("Envelope"), nsmap={"SOAP-ENV": NS_SOAP_ENV})
    etree.SubElement(envelope, _soap("Body")).append(message)
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return data


def decode_soap(data: bytes) -> bytes:
    """Return the SAML message a SOAP envelope carries, as bytes for the SAML parser.

    Raises:
        SamlRequestError: too large, not a SOAP 1.1 envelope with exactly one Body child, or
            hostile (a DTD or entities).

    """
    if len(data) > MAX_XML_BYTES:
        raise SamlRequestError("The SAML message is too large.")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SamlRequestError("The SAML message declares a DTD, which is not allowed.")
    try:
        envelope = xmlparser.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except (xmlparser.DTDForbidden, xmlparser.EntitiesForbidden):
        raise SamlRequestError("The SAML message declares a DTD, which is not allowed.") from None
    except (etree.XMLSyntaxError, ValueError):
        raise SamlRequestError("The SAML message is not well-formed XML.") from None
    bodies = envelope.findall(_soap("Body")) if envelope.tag == _soap("Envelope") else []
    children = [child for child in bodies[0] if isinstance(child.tag, str)] if bodies else []
    if len(bodies) != 1 or len(children) != 1:
        raise SamlRequestError("Expected a SOAP 1.1 envelope with one SAML message in its Body.")
    message: bytes = etree.tostring(children[0])
    return message


def encode_soap_fault(reason: str) -> bytes:
    """Return a SOAP 1.1 Client fault: the envelope itself was refused (SOAP 1.1 §4.4)."""
    envelope = etree.Element(_soap("Envelope"), nsmap={"SOAP-ENV": NS_SOAP_ENV})
    fault = etree.SubElement(etree.SubElement(envelope, _soap("Body")), _soap("Fault"))
    etree.SubElement(fault, "faultcode").text = "SOAP-ENV:Client"
    etree.SubElement(fault, "faultstring").text = reason
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return data
