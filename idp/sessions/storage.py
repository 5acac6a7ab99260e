"""The only SQL in ``sessions/``: login sessions and the relying parties that joined them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import lazyload

from idp import db
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.models.user import User


def add_login(login: LoginSession) -> None:
    session = db.get_session()
    session.add(login)
    session.flush()


def get_login_by_token_hash(token_hash: str) -> LoginSession | None:
    return db.get_session().scalar(
        select(LoginSession).where(LoginSession.token_hash == token_hash)
    )


def get_login_by_sid(sid: str) -> LoginSession | None:
    return db.get_session().scalar(select(LoginSession).where(LoginSession.sid == sid))


def end_logins(login_ids: list[int], now: datetime, reason: str) -> set[int]:
    """Mark the sessions ended unless they already were (compare-and-set); return those we did."""
    # Another worker (a sweep, an admin) may have ended some of them since we read them, and
    # their participants must hear of the end only once: one conditional UPDATE for all, and
    # RETURNING says which rows this transaction changed.
    if not login_ids:
        return set()
    session = db.get_session()
    statement = (
        update(LoginSession)
        .where(LoginSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if not session.get_bind().dialect.update_returning:  # SQLite < 3.35: one UPDATE each
        won = set()
        for login_id in login_ids:
            result = session.execute(statement.where(LoginSession.id == login_id))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                won.add(login_id)
        return won
    ended = session.execute(
        statement.where(LoginSession.id.in_(login_ids)).returning(LoginSession.id)
    )
    return set(ended.scalars())


def reload_logins(login_ids: list[int]) -> None:
    """Read these sessions again into the identity map (another transaction changed them)."""
    if login_ids:
        db.get_session().scalars(
            select(LoginSession)
            .where(LoginSession.id.in_(login_ids))
            .execution_options(populate_existing=True)
        ).all()


def list_unexpired_logins(
    now: datetime, user: User | None = None, *, keep: LoginSession | None = None
) -> list[LoginSession]:
    """Return sessions neither ended nor past their absolute expiry, newest first."""
    query = select(LoginSession).where(
        LoginSession.revoked_at.is_(None), LoginSession.expires_at > now
    )
    if user is not None:
        # The user is in the identity map already: no join.
        query = query.where(LoginSession.user_id == user.id).options(lazyload(LoginSession.user))
    if keep is not None:
        query = query.where(LoginSession.id != keep.id)
    return list(db.get_session().scalars(query.order_by(LoginSession.created_at.desc())))


def _live(query: Select[Any], now: datetime, idle_cutoff: datetime) -> Select[Any]:
    """Narrow ``query`` to sessions of enabled users that are neither ended nor expired."""
    return query.join(User, LoginSession.user_id == User.id).where(
        LoginSession.revoked_at.is_(None),
        LoginSession.expires_at > now,
        LoginSession.last_seen_at > idle_cutoff,
        User.is_disabled.is_(False),
    )


def page_live_logins(
    now: datetime,
    idle_cutoff: datetime,
    *,
    user: User | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[LoginSession]:
    """Return live sessions of enabled users, newest (highest id) first, ids below ``before``."""
    query = (
        _live(select(LoginSession), now, idle_cutoff).order_by(LoginSession.id.desc()).limit(limit)
    )
    if user is not None:
        query = query.where(LoginSession.user_id == user.id)
    if before is not None:
        query = query.where(LoginSession.id < before)
    return list(db.get_session().scalars(query))


def count_live_logins(now: datetime, idle_cutoff: datetime) -> int:
    """Return how many sessions of enabled users are neither ended nor expired."""
    query = _live(select(func.count()).select_from(LoginSession), now, idle_cutoff)
    return db.get_session().scalar(query) or 0


def list_stale_logins(now: datetime, idle_cutoff: datetime, limit: int) -> list[LoginSession]:
    """Return up to ``limit`` sessions not ended though idle or absolutely expired."""
    return list(
        db.get_session().scalars(
            select(LoginSession)
            .where(
                LoginSession.revoked_at.is_(None),
                (LoginSession.expires_at <= now) | (LoginSession.last_seen_at <= idle_cutoff),
            )
            .limit(limit)
        )
    )


def purge_logins(before: datetime) -> int:
    """Delete a batch of sessions ended before ``before`` (with what hangs off them)."""
    return db.delete_batch(LoginSession.id, LoginSession.revoked_at < before)


# Built once per dialect: every token response and assertion runs it.
_RECORD_PARTICIPANT = db.build_upserts(
    SessionParticipant,
    [SessionParticipant.login_session_id, SessionParticipant.protocol, SessionParticipant.rp],
    lambda excluded: {"last_seen_at": excluded.last_seen_at},
)


def record_participant(login_session_id: int, protocol: str, rp: str, now: datetime) -> None:
    """Record that ``rp`` joined a session, or was seen in it again: one statement.

    ``INSERT … ON CONFLICT DO UPDATE``: two first tokens of one app at once both succeed.
    """
    values = {
        "login_session_id": login_session_id,
        "protocol": protocol,
        "rp": rp,
        "joined_at": now,
        "last_seen_at": now,
    }
    db.run_upsert(_RECORD_PARTICIPANT, values)


def set_logged_out(participant_ids: list[int], now: datetime) -> None:
    """Record that these participants were told of their session's end (the caller commits)."""
    db.get_session().execute(
        update(SessionParticipant)
        .where(SessionParticipant.id.in_(participant_ids))
        .values(logged_out_at=now)
        .execution_options(synchronize_session=False)
    )


def list_participants_of(logins: list[LoginSession]) -> dict[int, list[SessionParticipant]]:
    """Return the relying parties that joined each of ``logins`` (by id), in one query."""
    joined: dict[int, list[SessionParticipant]] = {login.id: [] for login in logins}
    if joined:
        rows = db.get_session().scalars(
            select(SessionParticipant)
            .where(SessionParticipant.login_session_id.in_(list(joined)))
            .order_by(SessionParticipant.joined_at, SessionParticipant.id)
        )
        for row in rows:
            joined[row.login_session_id].append(row)
    return joined


def list_participants(login: LoginSession) -> list[SessionParticipant]:
    """Return the relying parties that joined ``login``, first joined first."""
    return list(
        db.get_session().scalars(
            select(SessionParticipant)
            .where(SessionParticipant.login_session_id == login.id)
            .order_by(SessionParticipant.joined_at, SessionParticipant.id)
        )
    )


def purge_logout_deliveries(before: datetime) -> int:
    """Delete a batch of back-channel deliveries that landed or were abandoned before ``before``."""
    return db.delete_batch(
        LogoutDelivery.id,
        (LogoutDelivery.delivered_at < before) | (LogoutDelivery.failed_at < before),
    )


def add_logout_deliveries(rows: list[dict[str, Any]]) -> None:
    """Queue back-channel deliveries (column values) in one INSERT; the caller commits."""
    db.insert_rows(LogoutDelivery, rows)


def _skip_locked(query: Select[LogoutDelivery]) -> Select[LogoutDelivery]:
    if db.get_database().engine.dialect.name != "postgresql":
        return query
    # Several IdP processes deliver at once: each row goes to exactly one of them. ``of``:
    # PostgreSQL refuses FOR UPDATE on the outer-joined (eager-loaded) login row:
    # https://www.postgresql.org/docs/16/sql-select.html#SQL-FOR-UPDATE-SHARE
    return query.with_for_update(skip_locked=True, of=LogoutDelivery)


def claim_new_deliveries(login_session_ids: list[int]) -> list[LogoutDelivery]:
    """Return the never-tried deliveries of these sessions, locked to this worker (PostgreSQL)."""
    query = select(LogoutDelivery).where(
        LogoutDelivery.login_session_id.in_(login_session_ids),
        LogoutDelivery.attempts == 0,
        LogoutDelivery.delivered_at.is_(None),
        LogoutDelivery.failed_at.is_(None),
    )
    return list(db.get_session().scalars(_skip_locked(query)))


def claim_due_deliveries(now: datetime, limit: int = 100) -> list[LogoutDelivery]:
    """Return deliveries whose back-off has passed, oldest due first, locked to this worker."""
    query = (
        select(LogoutDelivery)
        .where(
            LogoutDelivery.delivered_at.is_(None),
            LogoutDelivery.failed_at.is_(None),
            LogoutDelivery.next_attempt_at <= now,
        )
        .order_by(LogoutDelivery.next_attempt_at)
        .limit(limit)
    )
    return list(db.get_session().scalars(_skip_locked(query)))
