"""A second app on the test app's database and Redis (a replica), and one browser on both."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.db import get_database

COOKIE = "idp_session"


@contextmanager
def build_replica(app: Flask, settings: dict[str, Any]) -> Iterator[Flask]:
    """Yield another app built from ``settings`` with ``app``'s clock.

    It shares only what two replicas share: the database and Redis.
    """
    other = create_app(settings)
    other.extensions["idp.clock"] = app.extensions["idp.clock"]
    try:
        yield other
    finally:
        get_database(other).engine.dispose()


def browser_on(app: Flask, http: FlaskClient) -> FlaskClient:
    """Return a client of ``app`` holding the login cookie of ``http`` (the same browser)."""
    other = app.test_client()
    cookie = http.get_cookie(COOKIE)
    assert cookie is not None
    other.set_cookie(COOKIE, cookie.value, domain=cookie.domain)
    return other


def token_hash_of(app: Flask, http: FlaskClient) -> str:
    """Return the SHA-256 of the login token in the browser's signed cookie."""
    cookie = http.get_cookie(COOKIE)
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    token: str = serializer.loads(cookie.value)["_user_id"]
    return hashlib.sha256(token.encode()).hexdigest()


def cached_record_key(token_hash: str) -> str:
    """Return the Redis key of a session's cached record (idp/sessions/cache.py)."""
    return f"idp:login:record:{token_hash}"
