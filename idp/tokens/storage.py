"""The only SQL in ``tokens/``: personal access tokens by hash, id and owner."""

from __future__ import annotations

from sqlalchemy import select

from idp import db
from idp.models.token import PersonalAccessToken


def add_token(row: PersonalAccessToken) -> None:
    session = db.get_session()
    session.add(row)
    session.flush()


def get_token(token_id: int) -> PersonalAccessToken | None:
    return db.get_session().get(PersonalAccessToken, token_id)


def get_token_by_hash(secret_hash: str) -> PersonalAccessToken | None:
    query = select(PersonalAccessToken).where(PersonalAccessToken.secret_hash == secret_hash)
    return db.get_session().scalar(query)


def list_tokens(
    *, user_id: int | None = None, after: int | None = None, limit: int | None = None
) -> list[PersonalAccessToken]:
    """Return tokens in id order, of one user or of everyone."""
    query = select(PersonalAccessToken).order_by(PersonalAccessToken.id)
    if user_id is not None:
        query = query.where(PersonalAccessToken.user_id == user_id)
    if after is not None:
        query = query.where(PersonalAccessToken.id > after)
    if limit is not None:
        query = query.limit(limit)
    return list(db.get_session().scalars(query))
