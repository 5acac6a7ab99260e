"""Brute-force defence: per-account lockout counters and per-IP rate limits (Flask-Limiter).

Counters live in Redis when ``IDP_REDIS_URL`` is set (shared by every replica), else in SQL.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Protocol

from flask import Flask
from flask import Response
from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from idp import audit
from idp import db
from idp import redis_store
from idp.models.limits import FailureCounter
from idp.settings import Settings
from idp.settings import get_settings

if TYPE_CHECKING:
    import redis

TOO_MANY_FAILURES = "Too many failed attempts from your network. Try again later."


class CounterStore(Protocol):
    def locked_until(self, key: str, now: datetime) -> datetime | None:
        """Return when the lock of ``key`` ends, or None when it is not locked."""
        ...

    def add_failure(self, key: str, now: datetime, settings: Settings) -> datetime | None:
        """Count one failure; return the lock's end when this failure locks ``key``."""
        ...

    def clear(self, key: str) -> bool:
        """Forget the failures and the lock of ``key``; return whether it was locked."""
        ...

    def locks(self, keys: list[str], now: datetime) -> dict[str, datetime]:
        """Return the end of the lock of each of ``keys`` that is locked now (one round trip)."""
        ...


class SqlCounterStore:
    def locked_until(self, key: str, now: datetime) -> datetime | None:
        row = db.get_session().get(FailureCounter, key)
        if row is None or row.locked_until is None or row.locked_until <= now:
            return None
        return row.locked_until

    def add_failure(self, key: str, now: datetime, settings: Settings) -> datetime | None:
        session = db.get_session()
        row = session.scalar(
            select(FailureCounter).where(FailureCounter.key_hash == key).with_for_update()
        )
        if row is None:
            row = FailureCounter(key_hash=key, window_start=now, count=0)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # a concurrent first failure: count on its row
                session.rollback()
                return self.add_failure(key, now, settings)
        if row.window_start + settings.login_lockout <= now:
            row.window_start, row.count, row.locked_until = now, 0, None
        row.count += 1
        locked = None
        if row.count >= settings.login_max_failures and row.locked_until is None:
            locked = row.locked_until = now + settings.login_lockout
            row.window_start = now
        session.commit()
        return locked

    def clear(self, key: str) -> bool:
        session = db.get_session()
        row = session.get(FailureCounter, key)
        if row is None:
            return False
        was_locked = row.locked_until is not None and row.locked_until > db.now()
        session.delete(row)
        session.commit()
        return was_locked

    def locks(self, keys: list[str], now: datetime) -> dict[str, datetime]:
        if not keys:
            return {}
        rows = db.get_session().execute(
            select(FailureCounter.key_hash, FailureCounter.locked_until).where(
                FailureCounter.key_hash.in_(keys), FailureCounter.locked_until > now
            )
        )
        return {key: until for key, until in rows if until is not None}


class RedisCounterStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def locked_until(self, key: str, now: datetime) -> datetime | None:
        value = self.client.get(f"idp:lock:{key}")
        if value is None:
            return None
        # The end is stored rather than left to the key's TTL, so the app's clock decides.
        until = _parse_until(value)
        return until if until > now else None

    def add_failure(self, key: str, now: datetime, settings: Settings) -> datetime | None:
        window = max(1, int(settings.login_lockout.total_seconds()))
        pipe = self.client.pipeline()
        pipe.incr(f"idp:fail:{key}")
        pipe.expire(f"idp:fail:{key}", window, nx=True)
        count = int(pipe.execute()[0])
        if count < settings.login_max_failures:
            return None
        until = now + settings.login_lockout
        # nx: of concurrent failures past the limit, one locks (and is audited).
        if not self.client.set(f"idp:lock:{key}", until.isoformat(), nx=True, ex=window + 1):
            return None
        self.client.delete(f"idp:fail:{key}")
        return until

    def clear(self, key: str) -> bool:
        was_locked = bool(self.client.delete(f"idp:lock:{key}"))
        self.client.delete(f"idp:fail:{key}")
        return was_locked

    def locks(self, keys: list[str], now: datetime) -> dict[str, datetime]:
        if not keys:
            return {}
        values = self.client.mget([f"idp:lock:{key}" for key in keys])
        found: dict[str, datetime] = {}
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                until = _parse_until(value)
                if until > now:
                    found[key] = until
        return found


def _parse_until(value: bytes | str) -> datetime:
    return datetime.fromisoformat(value.decode() if isinstance(value, bytes) else value)


def _store() -> CounterStore:
    store: CounterStore = current_app.extensions["idp.limits"]
    return store


def _key(kind: str, name: str) -> str:
    # Keyed, so the table (or Redis) does not list the addresses that were tried.
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, f"{kind}:{name}".encode(), hashlib.sha256).hexdigest()


def account_key(email: str) -> str:
    """Return the counter key of the account ``email`` names, whether or not it exists."""
    return _key("account", email.strip().lower())


def client_key(client_id: str) -> str:
    """Return the counter key of the client ``client_id`` names."""
    return _key("client", client_id)


def is_locked(key: str) -> bool:
    """Return whether ``key`` is locked now."""
    return _store().locked_until(key, db.now()) is not None


def locked_until(keys: list[str]) -> dict[str, datetime]:
    """Return when the lock of each of ``keys`` that is locked now ends (absent: not locked)."""
    return _store().locks(keys, db.now())


def record_failure(
    key: str, event: str, *, user_id: int | None = None, rp: str | None = None
) -> None:
    """Count a failure of ``key``; audit ``event`` when it locks it (never told the client)."""
    until = _store().add_failure(key, db.now(), get_settings())
    if until is not None:
        audit.record(event, user_id=user_id, rp=rp, until=until.isoformat())
        db.get_session().commit()


def unlock(key: str) -> bool:
    """Lift the lock of ``key`` and forget its failures; return whether it was locked."""
    return _store().clear(key)


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["idp.limits"] = (
        RedisCounterStore(redis_store.get_client(app)) if settings.redis_url else SqlCounterStore()
    )
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options=redis_store.client_options() if settings.redis_url else {},
        key_prefix="idp",
        headers_enabled=True,
        strategy="fixed-window",
    )
    app.extensions["idp.limiter"] = limiter


def limit_failures(
    app: Flask, endpoints: list[str], scope: str, methods: list[str] | None = None
) -> None:
    """Answer 429 to a client IP past ``login_rate_limit`` failures (401) at ``endpoints``."""
    limiter: Limiter = app.extensions["idp.limiter"]
    rate = get_settings(app).login_rate_limit
    shared = limiter.shared_limit(
        rate,
        scope=scope,
        methods=methods,
        deduct_when=_is_failure,
        error_message=TOO_MANY_FAILURES,
    )
    for endpoint in endpoints:
        app.view_functions[endpoint] = shared(app.view_functions[endpoint])  # type: ignore[assignment]


def _is_failure(response: Response) -> bool:
    # Failed authentication only: a NAT full of honest users is not throttled by successes.
    # RFC 6749 §5.2 lets invalid_client be a 400 when no Authorization header was tried (a
    # client_secret_post or a client assertion): those count too.
    if response.status_code == 401:
        return True
    if response.status_code != 400 or not response.is_json:
        return False
    body = response.get_json(silent=True)
    return isinstance(body, dict) and body.get("error") == "invalid_client"
