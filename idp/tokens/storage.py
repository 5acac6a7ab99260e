"""The only SQL in ``tokens/``: personal access tokens by hash, id and owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import distinct
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from idp import db
from idp.models.token import PersonalAccessToken
from idp.models.token import SecurityNotice
from idp.models.token import TokenPolicy
from idp.models.token import TokenUsage


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


POLICY_ID = 1  # the policy is one row


def get_policy() -> TokenPolicy | None:
    return db.get_session().get(TokenPolicy, POLICY_ID)


def save_policy(values: dict[str, Any]) -> None:
    """Insert or overwrite the policy row."""
    session = db.get_session()
    row = session.get(TokenPolicy, POLICY_ID)
    if row is None:
        session.add(TokenPolicy(id=POLICY_ID, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()


def delete_policy() -> bool:
    row = get_policy()
    if row is None:
        return False
    db.get_session().delete(row)
    return True


# Built once per dialect: every bearer use runs it, binding only the row's values.
_UPSERT_USAGE = db.build_upserts(
    TokenUsage,
    [
        TokenUsage.token_kind,
        TokenUsage.token_id,
        TokenUsage.network,
        TokenUsage.hour,
        TokenUsage.resource,
    ],
    lambda excluded: {
        "count": TokenUsage.count + excluded.count,
        "last_seen": excluded.last_seen,
        "ip": excluded.ip,
        "user_agent": excluded.user_agent,
    },
)


def upsert_usage(values: dict[str, Any]) -> None:
    """Add ``count`` uses to their (token, network, hour, resource) row, inserting it if new.

    One statement (``INSERT … ON CONFLICT DO UPDATE``), so concurrent uses of a busy token
    neither race nor write a row per call.
    """
    db.run_upsert(_UPSERT_USAGE, values)


def list_usage(token_kind: str, token_id: str, *, limit: int) -> list[TokenUsage]:
    """Return a token's usage rows, the latest hour first."""
    query = (
        select(TokenUsage)
        .where(TokenUsage.token_kind == token_kind, TokenUsage.token_id == token_id)
        .order_by(TokenUsage.hour.desc(), TokenUsage.id.desc())
        .limit(limit)
    )
    return list(db.get_session().scalars(query))


def list_usage_of(keys: dict[str, list[str]], *, limit: int) -> list[TokenUsage]:
    """Return the usage rows of several tokens (``{kind: [token_id, ...]}``), latest first."""
    matches = [
        and_(TokenUsage.token_kind == kind, TokenUsage.token_id.in_(ids))
        for kind, ids in keys.items()
        if ids
    ]
    if not matches:
        return []
    query = (
        select(TokenUsage)
        .where(or_(*matches))
        .order_by(TokenUsage.last_seen.desc(), TokenUsage.id.desc())
        .limit(limit)
    )
    return list(db.get_session().scalars(query))


def purge_usage(before: datetime) -> int:
    return db.delete_batch(TokenUsage.id, TokenUsage.hour < before)


def has_usage_from(token_kind: str, token_id: str, network: str) -> bool:
    """Return whether the token was ever used directly (not introspected) from ``network``."""
    query = select(TokenUsage.id).where(
        TokenUsage.token_kind == token_kind,
        TokenUsage.token_id == token_id,
        TokenUsage.network == network,
        TokenUsage.introspected.is_(False),
    )
    return db.get_session().scalar(query.limit(1)) is not None


_COUNT_NETWORKS = select(func.count(distinct(TokenUsage.network))).where(
    TokenUsage.token_kind == bindparam("token_kind"),
    TokenUsage.token_id == bindparam("token_id"),
    TokenUsage.hour == bindparam("hour"),
    TokenUsage.introspected.is_(False),
)


def count_networks(token_kind: str, token_id: str, hour: datetime) -> int:
    """Return how many networks the token was used from directly in ``hour``."""
    params = {"token_kind": token_kind, "token_id": token_id, "hour": hour}
    return db.get_session().scalar(_COUNT_NETWORKS, params) or 0


def add_notice(notice: SecurityNotice) -> None:
    db.get_session().add(notice)


def has_notice(rule: str, token_kind: str, token_id: str, since: datetime) -> bool:
    query = select(SecurityNotice.id).where(
        SecurityNotice.rule == rule,
        SecurityNotice.token_kind == token_kind,
        SecurityNotice.token_id == token_id,
        SecurityNotice.created_at >= since,
    )
    return db.get_session().scalar(query.limit(1)) is not None


def list_unseen_notices(user_id: int) -> list[SecurityNotice]:
    query = (
        select(SecurityNotice)
        .where(SecurityNotice.user_id == user_id, SecurityNotice.seen_at.is_(None))
        .order_by(SecurityNotice.id)
    )
    return list(db.get_session().scalars(query))
