"""Register SAML service providers from their metadata, with the IdP's per-SP settings.

The service behind ``idp sp add`` (SAML Metadata §2.4.4 for what is read from the metadata).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from idp import audit
from idp import db
from idp.attributes import ATTRIBUTES
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.models.saml import ServiceProvider
from idp.saml import NAMEID_EMAIL
from idp.saml import NAMEID_FORMATS
from idp.saml import NAMEID_PERSISTENT
from idp.saml import NAMEID_TRANSIENT
from idp.saml import NAMEID_UNSPECIFIED
from idp.saml import storage
from idp.saml.bindings import MAX_RELAY_STATE_BYTES
from idp.saml.metadata import default_name_id_format
from idp.saml.metadata import issuable_name_id_formats
from idp.saml.metadata import parse_sp_metadata

NAMEID_SHORT_NAMES = {
    "persistent": NAMEID_PERSISTENT,
    "emailAddress": NAMEID_EMAIL,
    "transient": NAMEID_TRANSIENT,
    "unspecified": NAMEID_UNSPECIFIED,
}
# Released attributes may be named by OIDC claim (``email``) or SAML friendly name (``mail``).
RELEASABLE = {
    name: attribute.claim
    for attribute in ATTRIBUTES
    if attribute.saml_name is not None
    for name in (attribute.claim, attribute.saml_friendly_name, attribute.saml_name)
    if name
}


def get_sp_names(entity_ids: list[str]) -> dict[str, str]:
    """Return the display name of each registered SP, by entity ID."""
    return storage.get_sp_names(entity_ids)


def _name_id_format(value: str | None, listed: Sequence[str], released: list[str] | None) -> str:
    if value is None:
        return default_name_id_format(listed, released)
    chosen = NAMEID_SHORT_NAMES.get(value, value)
    if chosen not in NAMEID_FORMATS:
        raise InvalidInputError(f"unsupported NameID format: {value}")
    if chosen not in issuable_name_id_formats(released):
        raise InvalidInputError(
            f"the {value} NameID format is the e-mail address: release mail too, "
            "or choose persistent or transient"
        )
    return chosen


def _attributes(names: Sequence[str] | None) -> list[str] | None:
    if names is None:
        return None
    claims = []
    for name in names:
        if name not in RELEASABLE:
            raise InvalidInputError(f"unknown attribute: {name}")
        if RELEASABLE[name] not in claims:
            claims.append(RELEASABLE[name])
    return claims


def register_sp_metadata(
    metadata: bytes,
    *,
    replace: bool = False,
    name: str | None = None,
    name_id_format: str | None = None,
    attributes: Sequence[str] | None = None,
    sign_response: bool = True,
    sign_assertion: bool = True,
    encrypt_assertion: bool | None = None,
    relay_states: Sequence[str] = (),
) -> str:
    """Register (or with ``replace``, update) an SP from its metadata XML; commit.

    Return its entity ID. ``encrypt_assertion`` defaults to whether the metadata publishes an
    encryption key; ``attributes`` (claims or SAML names) default to every attribute.

    Raises:
        InvalidInputError: the metadata or a setting is unusable.
        ConflictError: the entity ID is registered and ``replace`` is false.

    """
    now = db.now()
    parsed = parse_sp_metadata(metadata, now)
    released = _attributes(attributes)
    chosen_format = _name_id_format(name_id_format, parsed.name_id_formats, released)
    encrypt = parsed.wants_encryption if encrypt_assertion is None else encrypt_assertion
    if encrypt and not parsed.encryption_certificates:
        raise InvalidInputError("encrypting assertions needs an encryption key in the metadata")
    # An unsigned assertion, even encrypted to the SP's public key, can be forged by anyone.
    if not (sign_response or sign_assertion or parsed.want_assertions_signed):
        raise InvalidInputError("the Response or the Assertion (or both) must be signed")
    for relay_state in relay_states:
        if len(relay_state.encode("utf-8")) > MAX_RELAY_STATE_BYTES:
            raise InvalidInputError("a RelayState may not exceed 80 bytes")
    sp = storage.find_service_provider(parsed.entity_id)
    if sp is not None and not replace:
        raise ConflictError(f"SP {parsed.entity_id} is already registered")
    values: dict[str, Any] = {
        "name": (name or parsed.name)[:200],
        "metadata_xml": parsed.xml,
        "acs_endpoints": parsed.acs_endpoints,
        "slo_endpoints": parsed.slo_endpoints,
        "signing_certificates": parsed.signing_certificates,
        "encryption_certificates": parsed.encryption_certificates,
        "authn_requests_signed": parsed.authn_requests_signed,
        "want_assertions_signed": parsed.want_assertions_signed,
        "name_id_formats": parsed.name_id_formats,
        "name_id_format": chosen_format,
        "attributes": released,
        "sign_response": sign_response,
        "sign_assertion": sign_assertion,
        "encrypt_assertion": encrypt,
        "relay_states": list(relay_states),
        "updated_at": now,
    }
    if sp is None:
        sp = ServiceProvider(entity_id=parsed.entity_id, created_at=now, **values)
        storage.add_service_provider(sp)
        audit.record("sp_registered", rp=sp.entity_id)
    else:
        for key, value in values.items():
            setattr(sp, key, value)
        audit.record("sp_updated", rp=sp.entity_id)
    db.get_session().commit()
    return sp.entity_id


def list_service_providers(
    *, after: int | None = None, limit: int | None = None
) -> list[ServiceProvider]:
    """Return SPs in id order, after the id ``after``, at most ``limit``."""
    return storage.list_service_providers(after=after, limit=limit)


def require_service_provider(sp_id: int) -> ServiceProvider:
    """Return the SP with this id.

    Raises:
        NotFoundError: no such SP.

    """
    sp = storage.get_service_provider_by_id(sp_id)
    if sp is None:
        raise NotFoundError(f"no service provider with id {sp_id}")
    return sp


def require_service_provider_by_entity_id(entity_id: str) -> ServiceProvider:
    """Return the SP with this entity ID (enabled or not).

    Raises:
        NotFoundError: no such SP.

    """
    sp = storage.find_service_provider(entity_id)
    if sp is None:
        raise NotFoundError(f"no service provider {entity_id}")
    return sp


def update_sp_settings(
    sp: ServiceProvider,
    *,
    attributes: Sequence[str] | None = None,
    release_all: bool = False,
    name_id_format: str | None = None,
) -> ServiceProvider:
    """Change what the SP receives: released attributes and NameID format; audit; commit.

    ``release_all`` releases every attribute (``attributes`` None leaves them alone).

    Raises:
        InvalidInputError: an unknown attribute or a format the release cannot support.

    """
    released = (
        None
        if release_all
        else (_attributes(attributes) if attributes is not None else sp.attributes)
    )
    chosen = sp.name_id_format if name_id_format is None else name_id_format
    chosen = _name_id_format(chosen, sp.name_id_formats, released)
    changed = [
        key
        for key, value in (("attributes", released), ("name_id_format", chosen))
        if getattr(sp, key) != value
    ]
    sp.attributes = released
    sp.name_id_format = chosen
    sp.updated_at = db.now()
    audit.record("sp_updated", rp=sp.entity_id, fields=changed)
    db.get_session().commit()
    return sp


def delete_service_provider(sp: ServiceProvider) -> None:
    """Remove the SP's registration; audit; commit (its users' persistent NameIDs stay)."""
    entity_id = sp.entity_id
    storage.delete_service_provider(sp)
    audit.record("sp_deleted", rp=entity_id)
    db.get_session().commit()
