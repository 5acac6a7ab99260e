"""Login sessions cached in Redis (``IDP_REDIS_URL``); the database stays the record.

A logged-in request finds its session with one Redis GET instead of a SELECT. The record is
keyed by the SHA-256 of the cookie token (never the token), holds only what the lookup and
the pages use, and lives until the next ``last_seen_at`` write is due (at most a minute),
never past the session's own idle or absolute expiry: a miss goes to the database, which
writes ``last_seen_at`` as before and fills the cache again.

Every change that ends or alters a session, or changes a cached user field, calls
:func:`invalidate` before its commit; it deletes the records and fences them off until the
transaction ends, when they are deleted again. A fill is refused while a change is pending
and when the session's version moved since the reader looked, so a reader that loaded the
old row from the database cannot write it back after the revoker's delete.

Sessions end through ``service._revoke_all``; user rows changed through the ORM are seen by
a flush hook. A bulk UPDATE of ``user_account`` or ``login_session`` written elsewhere must
call :func:`invalidate` itself (with every affected session, in one call).
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask
from flask import current_app
from sqlalchemy import event
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from idp import db
from idp.models.login import LoginSession
from idp.models.user import User
from idp.redis_store import get_client
from idp.settings import Settings

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

# The columns a cached record carries; any other is loaded from the database when read.
# The user's secrets (password hash) and the session's IP, user agent and details stay out.
LOGIN_FIELDS = (
    "id",
    "sid",
    "user_id",
    "created_at",
    "last_seen_at",
    "expires_at",
    "auth_time",
    "amr",
    "acr",
)
USER_FIELDS = (
    "id",
    "email",
    "subject",
    "name",
    "given_name",
    "family_name",
    "is_disabled",
    "is_admin",
)
TIMES = frozenset({"created_at", "last_seen_at", "expires_at", "auth_time"})

PREFIX = "idp:login:"
# Redis keys of one session: its record, its version (moved by every finished change) and
# the set of its changes in flight (no fill while one is).
RECORD, VERSION, PENDING = "record", "version", "pending"
PENDING_CHANGES = "idp.login_cache.pending"  # Session.info: changes begun in this transaction

# KEYS: record, version, pending. ARGV: the version read before the database, record, ttl ms.
FILL = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] or redis.call('SCARD', KEYS[3]) > 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
# KEYS: record, version, pending of each session. ARGV: 'begin' or 'end', change id, ttl ms.
CHANGE = """
for i = 1, #KEYS, 3 do
  redis.call('DEL', KEYS[i])
  if ARGV[1] == 'begin' then
    redis.call('SADD', KEYS[i + 2], ARGV[2])
    redis.call('PEXPIRE', KEYS[i + 2], ARGV[3])
  else
    redis.call('SREM', KEYS[i + 2], ARGV[2])
    redis.call('INCR', KEYS[i + 1])
    redis.call('PEXPIRE', KEYS[i + 1], ARGV[3])
  end
end
return #KEYS / 3
"""


@dataclass
class LoginCache:
    client: redis.Redis
    fill_script: Any
    change_script: Any
    # Versions and pending marks outlive any record (a record never outlives its session).
    fence_ttl: timedelta


@dataclass
class Lookup:
    """What Redis said about a session: its record (if cached) and its version."""

    login: LoginSession | None
    # The version to fill under; None: Redis did not answer, so nothing is filled.
    version: str | None


def init_app(app: Flask, settings: Settings) -> None:
    """Cache login sessions in the app's Redis when one is configured."""
    if not settings.redis_url:
        return
    client = get_client(app)
    cache = app.extensions["idp.login_cache"] = LoginCache(
        client=client,
        fill_script=client.register_script(FILL),
        change_script=client.register_script(CHANGE),
        fence_ttl=settings.session_absolute_timeout + timedelta(hours=1),
    )
    factory = db.get_database(app).sessionmaker
    event.listen(factory, "before_flush", functools.partial(_invalidate_changed_users, cache))
    event.listen(factory, "after_transaction_end", _end_changes)


def get_cache() -> LoginCache | None:
    """Return the app's login cache, or None without Redis."""
    cache: LoginCache | None = current_app.extensions.get("idp.login_cache")
    return cache


def _keys(token_hash: str) -> list[str]:
    return [f"{PREFIX}{part}:{token_hash}" for part in (RECORD, VERSION, PENDING)]


def lookup(token_hash: str) -> Lookup:
    """Return the cached record of a session (transient objects), with the version to fill under.

    Redis down: no record and no version, so the caller reads the database and fills nothing.
    """
    import redis

    cache = get_cache()
    if cache is None:
        return Lookup(None, None)
    record_key, version_key, _ = _keys(token_hash)
    try:
        record, version = cache.client.mget(record_key, version_key)
    except redis.RedisError as error:
        # Never fail a read because the cache is down: the database answers instead.
        logger.debug("login cache unavailable: %s", type(error).__name__)
        return Lookup(None, None)
    seen = "" if version is None else version.decode() if isinstance(version, bytes) else version
    return Lookup(_decode(token_hash, record) if record is not None else None, seen)


def attach(login: LoginSession) -> LoginSession | None:
    """Put a cached session and its user into the request's ORM session, without a SELECT.

    Columns left out of the record load from the database on first use. None when the
    request already holds either row: the caller then reads the database.
    """
    session = db.get_session()
    user = login.user
    if identity_key(LoginSession, login.id) in session.identity_map:
        return None
    if identity_key(User, user.id) in session.identity_map:
        return None
    for row in (user, login):
        make_transient_to_detached(row)
        session.add(row)
    set_committed_value(login, "user", user)
    return login


def fill(login: LoginSession, version: str, now: datetime, touch_due: datetime) -> None:
    """Cache a session read from the database, unless it changed since ``version`` was read.

    The record lives until ``touch_due`` (when ``last_seen_at`` must be written again) or the
    session's expiry, the sooner. Redis down: nothing is cached and the request goes on.
    """
    import redis

    cache = get_cache()
    ttl = int((touch_due - now).total_seconds() * 1000)
    if cache is None or ttl <= 0:
        return
    try:
        cache.fill_script(keys=_keys(login.token_hash), args=[version, _encode(login), ttl])
    except redis.RedisError as error:
        logger.debug("login cache unavailable: %s", type(error).__name__)


def invalidate(token_hashes: Collection[str], *, best_effort: bool = False) -> None:
    """Drop the cached records of these sessions now and again when the transaction ends.

    Call it before committing any change that ends or alters them. Until the transaction
    ends no reader may cache them, and afterwards no reader that looked before may.

    Raises:
        redis.RedisError: Redis is down, unless ``best_effort``. The caller's transaction
            must not commit: a replica that still reaches Redis would go on serving the old
            record, and a Redis that comes back keeps it. Refusing the change (503) is the
            only way that no revocation is silently lost.

    """
    cache = get_cache()
    if cache is not None:
        _begin(cache, db.get_session(), token_hashes, best_effort=best_effort)


def _begin(
    cache: LoginCache, session: Session, token_hashes: Collection[str], *, best_effort: bool
) -> None:
    import redis

    if not token_hashes:
        return
    change_id = secrets.token_hex(8)
    keys = [key for token_hash in token_hashes for key in _keys(token_hash)]
    try:
        _run_change(cache, "begin", change_id, keys)
    except redis.RedisError:
        if not best_effort:
            raise
        logger.warning("login cache unavailable: %d record(s) left to expire", len(token_hashes))
        return
    session.info.setdefault(PENDING_CHANGES, []).append((cache, change_id, keys))


def _run_change(cache: LoginCache, step: str, change_id: str, keys: list[str]) -> None:
    ttl = int(cache.fence_ttl.total_seconds() * 1000)
    cache.change_script(keys=keys, args=[step, change_id, ttl])


def _end_changes(session: Session, transaction: SessionTransaction) -> None:
    """Finish the changes begun in a transaction once it committed or rolled back."""
    import redis

    if transaction.parent is not None or PENDING_CHANGES not in session.info:
        return
    for cache, change_id, keys in session.info.pop(PENDING_CHANGES):
        try:
            _run_change(cache, "end", change_id, keys)
        except redis.RedisError as error:
            # The pending mark stays: these sessions are not cached until it expires.
            logger.warning("login cache unavailable at commit: %s", type(error).__name__)


def _invalidate_changed_users(
    cache: LoginCache, session: Session, context: Any, instances: Any
) -> None:
    """Invalidate the sessions of users whose cached fields change in this flush."""
    changed = [
        row.id
        for row in session.dirty
        if isinstance(row, User)
        and any(inspect(row).attrs[name].history.has_changes() for name in USER_FIELDS)
    ]
    changed += [row.id for row in session.deleted if isinstance(row, User)]
    if not changed:
        return
    with session.no_autoflush:
        hashes = session.scalars(
            select(LoginSession.token_hash).where(
                LoginSession.user_id.in_(changed), LoginSession.revoked_at.is_(None)
            )
        ).all()
    _begin(cache, session, hashes, best_effort=False)


def _encode(login: LoginSession) -> str:
    def fields(row: object, names: tuple[str, ...]) -> dict[str, Any]:
        values = {name: getattr(row, name) for name in names}
        return {
            name: value.isoformat() if name in TIMES else value for name, value in values.items()
        }

    return json.dumps(
        {"login": fields(login, LOGIN_FIELDS), "user": fields(login.user, USER_FIELDS)}
    )


def _decode(token_hash: str, record: bytes | str) -> LoginSession:
    data = json.loads(record)
    values = {
        name: datetime.fromisoformat(value) if name in TIMES else value
        for name, value in data["login"].items()
    }
    login = LoginSession(token_hash=token_hash, revoked_at=None, revoked_reason=None, **values)
    login.user = User(**data["user"])
    return login
