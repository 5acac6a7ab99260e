"""The only SQL of passkeys/: credentials and ceremony challenges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models.passkey import Passkey
from idp.models.passkey import PasskeyChallenge


def add_passkey(passkey: Passkey) -> None:
    db.get_session().add(passkey)


def list_passkeys(user_id: int) -> list[Passkey]:
    """Return the user's passkeys, oldest first."""
    query = select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)
    return list(db.get_session().scalars(query))


def list_credential_ids(user_id: int) -> list[str]:
    query = select(Passkey.credential_id).where(Passkey.user_id == user_id).order_by(Passkey.id)
    return list(db.get_session().scalars(query))


def count_passkeys(user_id: int) -> int:
    query = select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
    return int(db.get_session().scalar(query) or 0)


def count_by_user(user_ids: list[int]) -> dict[int, int]:
    query = (
        select(Passkey.user_id, func.count())
        .where(Passkey.user_id.in_(user_ids))
        .group_by(Passkey.user_id)
    )
    return {user_id: int(total) for user_id, total in db.get_session().execute(query)}


def get_passkey(passkey_id: int, user_id: int) -> Passkey | None:
    query = select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user_id)
    return db.get_session().scalar(query)


def get_passkey_by_credential_id(credential_id: str) -> Passkey | None:
    return db.get_session().scalar(select(Passkey).where(Passkey.credential_id == credential_id))


def lock_passkey(passkey_id: int) -> Passkey | None:
    """Return the passkey with its row locked (PostgreSQL) until the commit: one use at a time."""
    query = select(Passkey).where(Passkey.id == passkey_id).with_for_update(of=Passkey)
    return db.get_session().scalar(query.execution_options(populate_existing=True))


def delete_passkey(passkey: Passkey) -> None:
    db.get_session().delete(passkey)


def delete_user_passkeys(user_id: int) -> int:
    result = db.get_session().execute(delete(Passkey).where(Passkey.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def add_challenge(challenge: PasskeyChallenge, now: datetime) -> None:
    """Store a challenge, dropping the expired ones first (there are never many)."""
    session = db.get_session()
    session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.expires_at <= now))
    session.add(challenge)


def take_challenge(key_hash: str) -> PasskeyChallenge | None:
    """Remove and return the challenge; of two concurrent takers, only one gets it."""
    session = db.get_session()
    row = session.get(PasskeyChallenge, key_hash)
    if row is None:
        return None
    result = session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.key_hash == key_hash))
    if getattr(result, "rowcount", 0) != 1:
        return None
    session.expunge(row)
    return row


def drop_challenge(key_hash: str) -> None:
    db.get_session().execute(delete(PasskeyChallenge).where(PasskeyChallenge.key_hash == key_hash))
