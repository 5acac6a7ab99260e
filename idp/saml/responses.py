"""Build what the IdP sends: Response, Assertion, LogoutRequest, LogoutResponse (pure).

Data and ``now`` in, unsigned lxml elements out (SAML Core §2, §3.2.2, §3.7; Profiles §4.1.4.2).
Every value is set through lxml, which escapes it; signing lives in ``signing.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from lxml import etree

from idp.attributes import ATTRIBUTES
from idp.attributes import URI_NAME_FORMAT
from idp.errors import SamlStatusError
from idp.models.saml import ServiceProvider
from idp.models.user import User
from idp.saml import AC_MFA
from idp.saml import AC_PASSWORD
from idp.saml import AC_PASSWORD_PROTECTED_TRANSPORT
from idp.saml import AC_UNSPECIFIED
from idp.saml import CM_BEARER
from idp.saml import NAMEID_PERSISTENT
from idp.saml import NAMEID_UNSPECIFIED
from idp.saml import NS_SAML
from idp.saml import NS_SAMLP
from idp.saml import STATUS_INVALID_NAMEID_POLICY
from idp.saml import STATUS_NO_AUTHN_CONTEXT
from idp.saml import STATUS_SUCCESS
from idp.saml import TOP_LEVEL_STATUS
from idp.saml.metadata import issuable_name_id_formats
from idp.saml.metadata import select_slo
from idp.saml.requests import CLOCK_SKEW
from idp.saml.requests import format_instant

# The SP must consume an assertion within this window (Profiles §4.1.4.2 bearer confirmation).
ASSERTION_TTL: Final = timedelta(minutes=5)
# A LogoutRequest the IdP sends is valid this long (SAML Core §3.7.1 NotOnOrAfter).
LOGOUT_REQUEST_TTL: Final = timedelta(minutes=5)
# Authentication context classes, weakest first: a stronger login satisfies a weaker request.
AUTHN_CONTEXT_RANK: Final = {AC_PASSWORD: 0, AC_PASSWORD_PROTECTED_TRANSPORT: 1, AC_MFA: 2}


def new_id() -> str:
    """Return a fresh message ID: an xs:ID (a letter first) with 160 random bits."""
    return f"_{secrets.token_hex(20)}"


def _saml(name: str) -> str:
    return f"{{{NS_SAML}}}{name}"


def _samlp(name: str) -> str:
    return f"{{{NS_SAMLP}}}{name}"


@dataclass(frozen=True)
class SamlAttribute:
    name: str
    friendly_name: str | None
    values: tuple[str, ...]


def release_attributes(user: User, released: Sequence[str] | None) -> list[SamlAttribute]:
    """Return the user's SAML attributes an SP may see (``released`` claims; None: all)."""
    attributes = []
    for attribute in ATTRIBUTES:
        if attribute.saml_name is None or (
            released is not None and attribute.claim not in released
        ):
            continue
        value: Any = attribute.read(user)
        values = tuple(str(item) for item in value) if isinstance(value, list) else (value,)
        values = tuple(str(item) for item in values if item is not None and item != "")
        if values:
            attributes.append(
                SamlAttribute(attribute.saml_name, attribute.saml_friendly_name, values)
            )
    return attributes


def authn_context_of(amr: Sequence[str], acr: str | None) -> str:
    """Return the class of a login: multi-factor after an OTP, else PasswordProtectedTransport."""
    multi_factor = "otp" in amr or "mfa" in amr or acr == "2"
    return AC_MFA if multi_factor else AC_PASSWORD_PROTECTED_TRANSPORT


def choose_authn_context(login_class: str, requested: Sequence[str], comparison: str) -> str:
    """Return the class to state, honouring RequestedAuthnContext (SAML Core §3.3.2.2.1).

    Raises:
        SamlStatusError: NoAuthnContext, the login does not satisfy the request.

    """
    wanted = [item for item in requested if item != AC_UNSPECIFIED]
    if not wanted:
        return login_class
    have = AUTHN_CONTEXT_RANK[login_class]
    ranks = [AUTHN_CONTEXT_RANK[item] for item in wanted if item in AUTHN_CONTEXT_RANK]
    if comparison == "exact":
        # The first requested class the login satisfies, so a strong login can state a weaker
        # class the SP asked for by name.
        for item in wanted:
            if item in AUTHN_CONTEXT_RANK and AUTHN_CONTEXT_RANK[item] <= have:
                return item
    elif comparison == "minimum" and ranks and have >= min(ranks):
        return login_class
    elif comparison == "better" and ranks and have > min(ranks):
        return login_class
    elif comparison == "maximum" and ranks:
        ceiling = max(ranks)
        return next(
            name
            for name, rank in sorted(AUTHN_CONTEXT_RANK.items(), key=lambda item: -item[1])
            if rank <= min(have, ceiling)
        )
    raise SamlStatusError(STATUS_NO_AUTHN_CONTEXT, "The login does not meet the requested context.")


def needs_second_factor(login_class: str, requested: Sequence[str], comparison: str) -> bool:
    """Return whether the request refuses ``login_class`` but a multi-factor login would do."""
    if login_class == AC_MFA:
        return False
    try:
        choose_authn_context(login_class, requested, comparison)
    except SamlStatusError:
        try:
            choose_authn_context(AC_MFA, requested, comparison)
        except SamlStatusError:
            return False
        return True
    return False


def choose_name_id_format(
    requested: str | None, *, setting: str, released: Sequence[str] | None
) -> str:
    """Return the NameID format to issue, honouring NameIDPolicy (SAML Core §3.4.1.1).

    A requested format the IdP can issue for the SP (transient and persistent always,
    emailAddress only where ``mail`` is released); none or unspecified: the SP's ``setting``,
    or persistent if that setting would reveal an e-mail address the SP may not see.

    Raises:
        SamlStatusError: InvalidNameIDPolicy, the requested format cannot be issued.

    """
    issuable = issuable_name_id_formats(released)
    if requested is None or requested == NAMEID_UNSPECIFIED:
        return setting if setting in issuable else NAMEID_PERSISTENT
    if requested not in issuable:
        raise SamlStatusError(
            STATUS_INVALID_NAMEID_POLICY, "The requested NameID format is not available."
        )
    return requested


def _status(parent: etree._Element, status: str, message: str | None) -> None:
    element = etree.SubElement(parent, _samlp("Status"))
    top = TOP_LEVEL_STATUS.get(status, status)
    code = etree.SubElement(element, _samlp("StatusCode"), Value=top)
    if top != status:
        etree.SubElement(code, _samlp("StatusCode"), Value=status)
    if message:
        etree.SubElement(element, _samlp("StatusMessage")).text = message


def _name_id(
    parent: etree._Element,
    *,
    value: str,
    name_id_format: str,
    idp_entity_id: str,
    sp_entity_id: str,
) -> None:
    element = etree.SubElement(parent, _saml("NameID"), Format=name_id_format)
    if name_id_format == NAMEID_PERSISTENT:
        # SAML Core §8.3.7: persistent identifiers are qualified by both parties.
        element.set("NameQualifier", idp_entity_id)
        element.set("SPNameQualifier", sp_entity_id)
    element.text = value


def build_assertion(
    *,
    idp_entity_id: str,
    sp_entity_id: str,
    acs_url: str,
    in_response_to: str | None,
    name_id: str,
    name_id_format: str,
    session_index: str,
    authn_instant: datetime,
    authn_context: str,
    session_not_on_or_after: datetime,
    attributes: Sequence[SamlAttribute],
    now: datetime,
) -> etree._Element:
    """Build an unsigned bearer Assertion for Web Browser SSO (Profiles §4.1.4.2)."""
    not_on_or_after = format_instant(now + ASSERTION_TTL)
    assertion = etree.Element(
        _saml("Assertion"),
        nsmap={"saml": NS_SAML},
        ID=new_id(),
        Version="2.0",
        IssueInstant=format_instant(now),
    )
    etree.SubElement(assertion, _saml("Issuer")).text = idp_entity_id
    subject = etree.SubElement(assertion, _saml("Subject"))
    _name_id(
        subject,
        value=name_id,
        name_id_format=name_id_format,
        idp_entity_id=idp_entity_id,
        sp_entity_id=sp_entity_id,
    )
    confirmation = etree.SubElement(subject, _saml("SubjectConfirmation"), Method=CM_BEARER)
    data = etree.SubElement(
        confirmation,
        _saml("SubjectConfirmationData"),
        NotOnOrAfter=not_on_or_after,
        Recipient=acs_url,
    )
    if in_response_to is not None:
        data.set("InResponseTo", in_response_to)
    conditions = etree.SubElement(
        assertion,
        _saml("Conditions"),
        NotBefore=format_instant(now - CLOCK_SKEW),
        NotOnOrAfter=not_on_or_after,
    )
    restriction = etree.SubElement(conditions, _saml("AudienceRestriction"))
    etree.SubElement(restriction, _saml("Audience")).text = sp_entity_id
    statement = etree.SubElement(
        assertion,
        _saml("AuthnStatement"),
        AuthnInstant=format_instant(authn_instant),
        SessionIndex=session_index,
        SessionNotOnOrAfter=format_instant(session_not_on_or_after),
    )
    context = etree.SubElement(statement, _saml("AuthnContext"))
    etree.SubElement(context, _saml("AuthnContextClassRef")).text = authn_context
    if attributes:
        attribute_statement = etree.SubElement(assertion, _saml("AttributeStatement"))
        for attribute in attributes:
            element = etree.SubElement(
                attribute_statement,
                _saml("Attribute"),
                Name=attribute.name,
                NameFormat=URI_NAME_FORMAT,
            )
            if attribute.friendly_name:
                element.set("FriendlyName", attribute.friendly_name)
            for value in attribute.values:
                etree.SubElement(element, _saml("AttributeValue")).text = value
    return assertion


def build_response(
    *,
    idp_entity_id: str,
    destination: str,
    in_response_to: str | None,
    now: datetime,
    assertion: etree._Element | None = None,
    status: str = STATUS_SUCCESS,
    message: str | None = None,
) -> etree._Element:
    """Build an unsigned ``samlp:Response`` around one (signed or encrypted) assertion.

    Without an assertion it is an error Response with ``status`` (SAML Core §3.2.2).
    """
    response = etree.Element(
        _samlp("Response"),
        nsmap={"samlp": NS_SAMLP, "saml": NS_SAML},
        ID=new_id(),
        Version="2.0",
        IssueInstant=format_instant(now),
        Destination=destination,
    )
    if in_response_to is not None:
        response.set("InResponseTo", in_response_to)
    etree.SubElement(response, _saml("Issuer")).text = idp_entity_id
    _status(response, status, message)
    if assertion is not None:
        response.append(assertion)
    return response


def logout_destination(sp: ServiceProvider, binding: str | None = None) -> tuple[str, str] | None:
    """Return ``(binding, Location)`` of the SP's SLO endpoint for requests, or None."""
    endpoint = select_slo(sp.slo_endpoints, binding)
    if endpoint is None:
        return None
    return str(endpoint["binding"]), str(endpoint["location"])


def build_logout_request(
    sp: ServiceProvider,
    name_id: str,
    session_index: str | None,
    now: datetime,
    *,
    idp_entity_id: str,
    name_id_format: str = NAMEID_PERSISTENT,
    binding: str | None = None,
    reason: str | None = None,
) -> etree._Element:
    """Build an unsigned LogoutRequest from the IdP to an SP (SAML Core §3.7.1).

    Its Destination is the SP's SLO endpoint for ``binding`` (default: Redirect, else POST).

    Raises:
        ValueError: the SP registered no SingleLogoutService.

    """
    destination = logout_destination(sp, binding)
    if destination is None:
        raise ValueError(f"{sp.entity_id} has no SingleLogoutService")
    request = etree.Element(
        _samlp("LogoutRequest"),
        nsmap={"samlp": NS_SAMLP, "saml": NS_SAML},
        ID=new_id(),
        Version="2.0",
        IssueInstant=format_instant(now),
        Destination=destination[1],
        NotOnOrAfter=format_instant(now + LOGOUT_REQUEST_TTL),
    )
    if reason is not None:
        request.set("Reason", reason)
    etree.SubElement(request, _saml("Issuer")).text = idp_entity_id
    _name_id(
        request,
        value=name_id,
        name_id_format=name_id_format,
        idp_entity_id=idp_entity_id,
        sp_entity_id=sp.entity_id,
    )
    if session_index is not None:
        etree.SubElement(request, _samlp("SessionIndex")).text = session_index
    return request


def build_logout_response(
    *,
    idp_entity_id: str,
    destination: str | None,
    in_response_to: str,
    now: datetime,
    status: str = STATUS_SUCCESS,
    message: str | None = None,
) -> etree._Element:
    """Build an unsigned LogoutResponse (SAML Core §3.7.2); no Destination over SOAP."""
    response = etree.Element(
        _samlp("LogoutResponse"),
        nsmap={"samlp": NS_SAMLP, "saml": NS_SAML},
        ID=new_id(),
        Version="2.0",
        IssueInstant=format_instant(now),
        InResponseTo=in_response_to,
    )
    if destination is not None:
        response.set("Destination", destination)
    etree.SubElement(response, _saml("Issuer")).text = idp_entity_id
    _status(response, status, message)
    return response
