"""Parse and validate what SPs send: AuthnRequest, LogoutRequest, LogoutResponse (pure).

Hostile XML is refused before any value is read: no DTD, no entities, no network, schema
checked against the SAML 2.0 protocol schema (SAML Core §3; Bindings §3.4.4, §3.5.4).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Final

import onelogin.saml2
from lxml import etree
from onelogin.saml2 import xmlparser

from idp.errors import SamlRequestError
from idp.saml import NAMEID_ENTITY
from idp.saml import NS_SAML
from idp.saml import NS_SAMLP

# Clocks disagree: accept messages this far in the future and past their stated expiry.
CLOCK_SKEW: Final = timedelta(minutes=3)
# An AuthnRequest or LogoutRequest older than this is refused; replays are remembered as long.
MESSAGE_MAX_AGE: Final = timedelta(minutes=10)
MAX_ID_LENGTH: Final = 256
MAX_URI_LENGTH: Final = 1024

SCHEMAS_DIR: Final = Path(onelogin.saml2.__file__).parent / "schemas"
PROTOCOL_SCHEMA: Final = "saml-schema-protocol-2.0.xsd"
METADATA_SCHEMA: Final = "saml-schema-metadata-2.0.xsd"

# An XMLSchema clears and refills its own error log on every validation, so a shared one
# races: one per thread, never shared.
# https://github.com/lxml/lxml/blob/lxml-6.1.3/src/lxml/xmlschema.pxi#L128-L135
_schemas = threading.local()


def _schema(name: str) -> etree.XMLSchema:
    cache: dict[str, etree.XMLSchema] = _schemas.__dict__.setdefault("by_name", {})
    if name not in cache:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        cache[name] = etree.XMLSchema(etree.parse(str(SCHEMAS_DIR / name), parser))
    return cache[name]


def parse_xml(data: bytes, schema: str = PROTOCOL_SCHEMA) -> etree._Element:
    """Parse untrusted XML: no DOCTYPE, no entities, no network, valid against ``schema``.

    Raises:
        SamlRequestError: the XML is malformed, declares a DTD or entities, or is not valid.

    """
    # XXE and billion laughs both need a DOCTYPE; refuse it before libxml2 reads a byte of
    # it. The parsed tree is checked again below (an UTF-16 document hides from this test).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise SamlRequestError("The SAML message declares a DTD, which is not allowed.")
    try:
        root: etree._Element = xmlparser.fromstring(data, forbid_dtd=True, forbid_entities=True)
    except (xmlparser.DTDForbidden, xmlparser.EntitiesForbidden):
        raise SamlRequestError("The SAML message declares a DTD, which is not allowed.") from None
    except (etree.XMLSyntaxError, ValueError):
        raise SamlRequestError("The SAML message is not well-formed XML.") from None
    if not _schema(schema).validate(root):
        raise SamlRequestError("The SAML message is not valid against the SAML 2.0 schema.")
    return root


def _samlp(name: str) -> str:
    return f"{{{NS_SAMLP}}}{name}"


def _saml(name: str) -> str:
    return f"{{{NS_SAML}}}{name}"


def parse_instant(value: str | None) -> datetime:
    """Parse an xs:dateTime in UTC (SAML Core §1.3.3).

    Raises:
        SamlRequestError: missing, not a date-time, or out of range.

    """
    if not value:
        raise SamlRequestError("A SAML time is missing.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SamlRequestError("A SAML time is malformed.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is valid xs:dateTime, not a datetime
        raise SamlRequestError("A SAML time is out of range.") from None


def parse_boolean(value: str | None) -> bool:
    """Read an xs:boolean attribute (absent is false)."""
    return value is not None and value.strip() in ("true", "1")


def format_instant(value: datetime) -> str:
    """Format a SAML time: UTC, seconds, ``Z`` (SAML Core §1.3.3)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Common:
    id: str
    issuer: str
    issue_instant: datetime
    destination: str | None


def _common(root: etree._Element, kind: str) -> _Common:
    if root.tag != _samlp(kind):
        raise SamlRequestError(f"Expected a samlp:{kind}.")
    if root.get("Version") != "2.0":
        raise SamlRequestError("Only SAML 2.0 messages are accepted.")
    message_id = root.get("ID") or ""
    if not message_id or len(message_id) > MAX_ID_LENGTH:
        raise SamlRequestError("The message ID is missing or too long.")
    issuer_element = root.find(_saml("Issuer"))
    issuer = (issuer_element.text or "").strip() if issuer_element is not None else ""
    if not issuer or len(issuer) > MAX_URI_LENGTH:
        raise SamlRequestError("The message has no Issuer.")
    issuer_format = issuer_element.get("Format") if issuer_element is not None else None
    if issuer_format not in (None, NAMEID_ENTITY):
        raise SamlRequestError("The Issuer must be an entity ID.")
    return _Common(
        id=message_id,
        issuer=issuer,
        issue_instant=parse_instant(root.get("IssueInstant")),
        destination=root.get("Destination"),
    )


def validate_fresh(issue_instant: datetime, now: datetime) -> None:
    """Refuse a message issued in the future or longer ago than MESSAGE_MAX_AGE.

    Raises:
        SamlRequestError: the message is stale or from the future.

    """
    if issue_instant > now + CLOCK_SKEW:
        raise SamlRequestError("The message was issued in the future; check the SP's clock.")
    if issue_instant < now - MESSAGE_MAX_AGE - CLOCK_SKEW:
        raise SamlRequestError("The message is too old; start again from the application.")


def validate_destination(destination: str | None, expected: str) -> None:
    """Refuse a Destination other than the endpoint that received the message (§3.5.5.2).

    Raises:
        SamlRequestError: the Destination names another endpoint.

    """
    if destination is not None and destination != expected:
        raise SamlRequestError("The message was sent to another destination.")


@dataclass(frozen=True)
class AuthnRequest:
    """A parsed ``samlp:AuthnRequest`` (SAML Core §3.4.1)."""

    id: str
    issuer: str
    issue_instant: datetime
    destination: str | None
    acs_url: str | None
    acs_index: int | None
    protocol_binding: str | None
    force_authn: bool
    is_passive: bool
    name_id_format: str | None
    allow_create: bool | None
    authn_contexts: tuple[str, ...]
    comparison: str
    root: etree._Element = field(compare=False, repr=False)


def parse_authn_request(data: bytes) -> AuthnRequest:
    """Parse an AuthnRequest.

    Raises:
        SamlRequestError: hostile, malformed or not a SAML 2.0 AuthnRequest.

    """
    root = parse_xml(data)
    common = _common(root, "AuthnRequest")
    index = root.get("AssertionConsumerServiceIndex")
    acs_url = root.get("AssertionConsumerServiceURL")
    # SAML Core §3.4.1: the index is "mutually exclusive" with the URL and ProtocolBinding.
    if index is not None and (acs_url is not None or root.get("ProtocolBinding") is not None):
        raise SamlRequestError("AssertionConsumerServiceIndex excludes the URL and binding.")
    policy = root.find(_samlp("NameIDPolicy"))
    requested = root.find(_samlp("RequestedAuthnContext"))
    contexts: tuple[str, ...] = ()
    comparison = "exact"
    if requested is not None:
        comparison = requested.get("Comparison", "exact")
        # Declaration references name no class the IdP knows, so they are never satisfied.
        contexts = tuple(
            (element.text or "").strip()
            for element in requested
            if element.tag in (_saml("AuthnContextClassRef"), _saml("AuthnContextDeclRef"))
        )
    return AuthnRequest(
        id=common.id,
        issuer=common.issuer,
        issue_instant=common.issue_instant,
        destination=common.destination,
        acs_url=acs_url,
        acs_index=int(index) if index is not None else None,
        protocol_binding=root.get("ProtocolBinding"),
        force_authn=parse_boolean(root.get("ForceAuthn")),
        is_passive=parse_boolean(root.get("IsPassive")),
        name_id_format=policy.get("Format") if policy is not None else None,
        allow_create=(
            parse_boolean(policy.get("AllowCreate"))
            if policy is not None and policy.get("AllowCreate") is not None
            else None
        ),
        authn_contexts=contexts,
        comparison=comparison,
        root=root,
    )


@dataclass(frozen=True)
class LogoutRequest:
    """A parsed ``samlp:LogoutRequest`` (SAML Core §3.7.1)."""

    id: str
    issuer: str
    issue_instant: datetime
    destination: str | None
    not_on_or_after: datetime | None
    name_id: str
    name_id_format: str | None
    session_indexes: tuple[str, ...]
    root: etree._Element = field(compare=False, repr=False)


def parse_logout_request(data: bytes) -> LogoutRequest:
    """Parse a LogoutRequest whose principal is a plain NameID.

    Raises:
        SamlRequestError: hostile, malformed, or identifies the principal another way.

    """
    root = parse_xml(data)
    common = _common(root, "LogoutRequest")
    name_id = root.find(_saml("NameID"))
    if name_id is None or not (name_id.text or "").strip():
        raise SamlRequestError("The LogoutRequest must carry a plain NameID.")
    not_on_or_after = root.get("NotOnOrAfter")
    return LogoutRequest(
        id=common.id,
        issuer=common.issuer,
        issue_instant=common.issue_instant,
        destination=common.destination,
        not_on_or_after=parse_instant(not_on_or_after) if not_on_or_after else None,
        name_id=(name_id.text or "").strip(),
        name_id_format=name_id.get("Format"),
        session_indexes=tuple(
            (element.text or "").strip() for element in root.findall(_samlp("SessionIndex"))
        ),
        root=root,
    )


@dataclass(frozen=True)
class LogoutResponse:
    """A parsed ``samlp:LogoutResponse`` (SAML Core §3.7.2)."""

    id: str
    issuer: str
    issue_instant: datetime
    destination: str | None
    in_response_to: str | None
    status: str
    root: etree._Element = field(compare=False, repr=False)


def parse_logout_response(data: bytes) -> LogoutResponse:
    """Parse a LogoutResponse.

    Raises:
        SamlRequestError: hostile or malformed.

    """
    root = parse_xml(data)
    common = _common(root, "LogoutResponse")
    code = root.find(f"{_samlp('Status')}/{_samlp('StatusCode')}")
    return LogoutResponse(
        id=common.id,
        issuer=common.issuer,
        issue_instant=common.issue_instant,
        destination=common.destination,
        in_response_to=root.get("InResponseTo"),
        status=code.get("Value", "") if code is not None else "",
        root=root,
    )
