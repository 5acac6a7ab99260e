"""The app's one Redis client (``IDP_REDIS_URL``), and the 503 an outage of it answers.

Short timeouts: with Redis down, a request that needs it answers 503 within about a second
rather than hanging a worker; one immediate retry lets a pooled connection that died with a
restarted Redis reconnect on its own, so recovery needs no restart of the IdP.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask
from flask import current_app
from flask.typing import ResponseReturnValue

from idp import errors
from idp.settings import Settings

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT = 0.5  # seconds, per command
CONNECT_TIMEOUT = 0.5  # seconds, per connection attempt
RETRIES = 1  # one immediate retry: a stale pooled connection reconnects


def client_options() -> dict[str, Any]:
    """Return the redis-py options of every client (Flask-Limiter's storage too)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "retry": Retry(NoBackoff(), RETRIES),
    }


def build_client(url: str) -> redis.Redis:
    """Return a redis-py client of ``url`` (it connects on first use, never here)."""
    import redis

    return redis.Redis.from_url(url, **client_options())


def init_app(app: Flask, settings: Settings) -> None:
    """Build the shared client when Redis is configured; answer 503 while it is down."""
    if not settings.redis_url:
        return
    import redis

    app.extensions["idp.redis"] = build_client(settings.redis_url)
    app.register_error_handler(redis.RedisError, _redis_unavailable)


def get_client(app: Flask | None = None) -> redis.Redis:
    """Return the app's Redis client (only when ``redis_url`` is set)."""
    client: redis.Redis = (app or current_app).extensions["idp.redis"]
    return client


def _redis_unavailable(error: Exception) -> ResponseReturnValue:
    # The class only: the message may name the server's address.
    logger.error("redis unavailable: %s", type(error).__name__)
    return errors.render_unavailable()
