"""The only SQL in saml/: service providers, SessionIndex records, persistent NameIDs."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from idp import db
from idp.db import Base
from idp.models.login import LoginSession
from idp.models.saml import SamlPersistentId
from idp.models.saml import SamlSessionIndex
from idp.models.saml import ServiceProvider
from idp.saml import NAMEID_TRANSIENT


def get_service_provider(entity_id: str) -> ServiceProvider | None:
    """Return the enabled SP with this entity ID, or None."""
    # PostgreSQL text cannot hold NUL: such a value names no SP (and must not reach SQL).
    if not entity_id or len(entity_id) > 1024 or "\x00" in entity_id:
        return None
    sp = find_service_provider(entity_id)
    return None if sp is None or sp.is_disabled else sp


def find_service_provider(entity_id: str) -> ServiceProvider | None:
    """Return the SP with this entity ID, enabled or not, or None."""
    return db.get_session().scalar(
        select(ServiceProvider).where(ServiceProvider.entity_id == entity_id)
    )


def find_service_providers(entity_ids: Sequence[str]) -> dict[str, ServiceProvider]:
    """Return the SPs with these entity IDs (enabled or not) by entity ID, in one SELECT."""
    if not entity_ids:
        return {}
    found = db.get_session().scalars(
        select(ServiceProvider).where(ServiceProvider.entity_id.in_(sorted(set(entity_ids))))
    )
    return {sp.entity_id: sp for sp in found}


def add_service_provider(sp: ServiceProvider) -> None:
    """Persist a new SP; the caller commits."""
    db.get_session().add(sp)
    db.get_session().flush()


def list_service_providers(
    *, after: int | None = None, limit: int | None = None
) -> list[ServiceProvider]:
    """Return SPs in id order (after the id ``after``, at most ``limit``)."""
    query = select(ServiceProvider).order_by(ServiceProvider.id)
    if after is not None:
        query = query.where(ServiceProvider.id > after)
    if limit is not None:
        query = query.limit(limit)
    return list(db.get_session().scalars(query))


def get_service_provider_by_id(sp_id: int) -> ServiceProvider | None:
    """Return the SP (enabled or not) with this database id, or None."""
    return db.get_session().get(ServiceProvider, sp_id) if 0 < sp_id < 2**31 else None


def delete_service_provider(sp: ServiceProvider) -> None:
    """Delete an SP and its SessionIndex records; the caller commits.

    Its persistent NameIDs stay: registered again, it finds the same identifiers.
    """
    db.get_session().execute(
        delete(SamlSessionIndex).where(SamlSessionIndex.sp_entity_id == sp.entity_id)
    )
    db.get_session().delete(sp)
    db.get_session().flush()


def get_sp_names(entity_ids: list[str]) -> dict[str, str]:
    """Return ``{entity_id: name}`` of those SPs that exist."""
    if not entity_ids:
        return {}
    rows = db.get_session().execute(
        select(ServiceProvider.entity_id, ServiceProvider.name).where(
            ServiceProvider.entity_id.in_(entity_ids)
        )
    )
    return {entity_id: name for entity_id, name in rows}


def get_persistent_id(user_id: int, entity_id: str) -> str | None:
    """Return the user's persistent NameID at this SP, or None."""
    return db.get_session().scalar(
        select(SamlPersistentId.name_id).where(
            SamlPersistentId.user_id == user_id, SamlPersistentId.sp_entity_id == entity_id
        )
    )


def _insert_unless_present(model: type[Base], values: dict[str, Any]) -> None:
    """INSERT a row, doing nothing when a unique constraint says it already exists.

    Two first logins at once must not fail each other; a SAVEPOINT would do on PostgreSQL,
    but pysqlite commits the outer transaction when the outermost SAVEPOINT is released
    (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl,
    https://github.com/python/cpython/issues/54949).
    """
    session = db.get_session()
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = postgresql_insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(model).values(**values).on_conflict_do_nothing()
    else:  # no portable upsert: the unique constraint still keeps the data right
        statement = insert(model).values(**values)
    session.execute(statement)


def create_persistent_id(user_id: int, entity_id: str, now: datetime) -> str:
    """Return the user's persistent NameID at this SP, creating a random one if needed."""
    _insert_unless_present(
        SamlPersistentId,
        {
            "user_id": user_id,
            "sp_entity_id": entity_id,
            "name_id": secrets.token_urlsafe(32),
            "created_at": now,
        },
    )
    name_id = get_persistent_id(user_id, entity_id)
    assert name_id is not None  # noqa: S101  (inserted or already there)
    return name_id


def record_session_index(
    sp: ServiceProvider, login: LoginSession, name_id: str, name_id_format: str, now: datetime
) -> SamlSessionIndex:
    """Record that ``sp`` received an assertion in ``login``: one SessionIndex per pair."""
    _insert_unless_present(
        SamlSessionIndex,
        {
            "sp_entity_id": sp.entity_id,
            "login_session_id": login.id,
            "name_id": name_id,
            "name_id_format": name_id_format,
            "session_index": f"_{secrets.token_hex(20)}",
            "created_at": now,
            "last_issued_at": now,
        },
    )
    record = db.get_session().scalar(
        select(SamlSessionIndex).where(
            SamlSessionIndex.login_session_id == login.id,
            SamlSessionIndex.sp_entity_id == sp.entity_id,
        )
    )
    assert record is not None  # noqa: S101  (inserted or already there)
    record.name_id = name_id
    record.name_id_format = name_id_format
    record.last_issued_at = now
    return record


def list_participants(login: LoginSession) -> list[SamlSessionIndex]:
    """Return the SAML SPs that received assertions in ``login``, first first.

    Each record carries ``sp`` (the ServiceProvider), ``name_id``, ``name_id_format`` and
    ``session_index``: what a LogoutRequest to that SP must name (SAML Core §3.7.1).
    """
    return list(
        db.get_session().scalars(
            select(SamlSessionIndex)
            .where(SamlSessionIndex.login_session_id == login.id)
            .order_by(SamlSessionIndex.created_at, SamlSessionIndex.id)
        )
    )


def find_session_indexes(
    entity_id: str, name_id: str, session_indexes: Sequence[str]
) -> list[SamlSessionIndex]:
    """Return the records a LogoutRequest from ``entity_id`` names (SAML Core §3.7.3.2).

    With no SessionIndex, every session of that principal at that SP.
    """
    named = SamlSessionIndex.name_id == name_id
    if session_indexes:
        # A transient NameID is new in every assertion and only the last one is kept; the SP
        # may name an earlier one, and the SessionIndex (known to this SP only) still holds.
        named = or_(named, SamlSessionIndex.name_id_format == NAMEID_TRANSIENT)
    query = select(SamlSessionIndex).where(SamlSessionIndex.sp_entity_id == entity_id, named)
    if session_indexes:
        query = query.where(SamlSessionIndex.session_index.in_(list(session_indexes)))
    return list(db.get_session().scalars(query.order_by(SamlSessionIndex.id)))


def get_session_index(login_session_id: int, entity_id: str) -> SamlSessionIndex | None:
    """Return what ``entity_id`` was told in one login session (its NameID, SessionIndex)."""
    return db.get_session().scalar(
        select(SamlSessionIndex).where(
            SamlSessionIndex.login_session_id == login_session_id,
            SamlSessionIndex.sp_entity_id == entity_id,
        )
    )


def get_session_index_by_value(session_index: str) -> SamlSessionIndex | None:
    """Return the record of one SessionIndex value, or None."""
    return db.get_session().scalar(
        select(SamlSessionIndex).where(SamlSessionIndex.session_index == session_index)
    )
