"""One-time value cache (assertion ``jti``, SAML request IDs): Redis when configured, else SQL."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from typing import Protocol

from flask import Flask
from flask import current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp import db
from idp import redis_store
from idp.models.oidc import ReplayEntry
from idp.sessions import logout
from idp.settings import Settings

if TYPE_CHECKING:
    import redis


class ReplayCache(Protocol):
    def remember(self, key: str, expires_at: datetime) -> bool:
        """Record ``key`` until ``expires_at``; return False if it was already recorded."""
        ...


class SqlReplayCache:
    def remember(self, key: str, expires_at: datetime) -> bool:
        session = db.get_session()
        now = db.now()
        session.execute(delete(ReplayEntry).where(ReplayEntry.expires_at <= now))
        session.add(ReplayEntry(key=key, expires_at=expires_at))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        return True


class RedisReplayCache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def remember(self, key: str, expires_at: datetime) -> bool:
        seconds = max(1, int((expires_at - db.now()).total_seconds()) + 1)
        return bool(self.client.set(f"idp:replay:{key}", b"1", nx=True, ex=seconds))


def purge_expired() -> int:
    """Delete a batch of expired SQL replay entries (Redis expires its own); audit the count."""
    count = db.delete_batch(ReplayEntry.key, ReplayEntry.expires_at <= db.now())
    if count:
        audit.record("expired_rows_purged", replay_entries=count)
    db.get_session().commit()
    return count


def init_app(app: Flask, settings: Settings) -> None:
    cache: ReplayCache = (
        RedisReplayCache(redis_store.get_client(app)) if settings.redis_url else SqlReplayCache()
    )
    app.extensions["idp.replay"] = cache
    if not settings.redis_url:
        logout.get_registry(app).periodic.append(purge_expired)


def remember_once(key: str, expires_at: datetime) -> bool:
    """Record ``key`` until ``expires_at``; return False when it is a replay."""
    cache: ReplayCache = current_app.extensions["idp.replay"]
    return cache.remember(key, expires_at)
