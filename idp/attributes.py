"""The one attribute table: user field -> OIDC claim (and scope) -> SAML attribute name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from idp.models.user import User

URI_NAME_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"


@dataclass(frozen=True)
class Attribute:
    claim: str
    scope: str
    read: Callable[[User], Any]
    saml_name: str | None = None
    saml_friendly_name: str | None = None


def _preferred_username(user: User) -> str:
    return user.email


def _updated_at(user: User) -> int:
    return int(user.updated_at.timestamp())


def _groups(user: User) -> list[str]:
    return sorted(group.name for group in user.groups)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "name",
        "profile",
        lambda user: user.name,
        "urn:oid:2.16.840.1.113730.3.1.241",
        "displayName",
    ),
    Attribute(
        "given_name", "profile", lambda user: user.given_name, "urn:oid:2.5.4.42", "givenName"
    ),
    Attribute("family_name", "profile", lambda user: user.family_name, "urn:oid:2.5.4.4", "sn"),
    Attribute("preferred_username", "profile", _preferred_username),
    Attribute("updated_at", "profile", _updated_at),
    Attribute(
        "email", "email", lambda user: user.email, "urn:oid:0.9.2342.19200300.100.1.3", "mail"
    ),
    # Accounts are created by administrators, who vouch for the address.
    Attribute("email_verified", "email", lambda user: True),
    Attribute("groups", "groups", _groups, "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf"),
)

BY_CLAIM = {attribute.claim: attribute for attribute in ATTRIBUTES}
SCOPES = ("openid", "profile", "email", "groups", "offline_access")


def claims_for_scopes(user: User, scopes: set[str]) -> dict[str, Any]:
    """Return the user's claims released by ``scopes`` (OIDC Core §5.4), None values dropped."""
    values = {
        attribute.claim: attribute.read(user)
        for attribute in ATTRIBUTES
        if attribute.scope in scopes
    }
    return {claim: value for claim, value in values.items() if value is not None}


def claims_by_name(user: User, names: set[str]) -> dict[str, Any]:
    """Return the named claims (the ``claims`` request parameter, OIDC Core §5.5)."""
    values = {name: BY_CLAIM[name].read(user) for name in names if name in BY_CLAIM}
    return {claim: value for claim, value in values.items() if value is not None}
