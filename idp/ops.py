"""Operations endpoints: /healthz (alive) and /readyz (database and Redis reachable)."""

from __future__ import annotations

import logging

from flask import Blueprint
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from idp import db
from idp.settings import get_settings

bp = Blueprint("ops", __name__)
logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


@bp.route("/healthz")
def healthz() -> ResponseReturnValue:
    return {"status": "ok"}, 200, NO_STORE


def _check_database() -> str:
    try:
        with db.get_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        logger.warning("readyz: database unreachable", exc_info=True)
        return "unreachable"
    return "ok"


def _check_redis(url: str) -> str:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError:
        logger.warning("readyz: redis unreachable", exc_info=True)
        return "unreachable"
    return "ok"


@bp.route("/readyz")
def readyz() -> ResponseReturnValue:
    settings = get_settings()
    checks = {"database": _check_database()}
    if settings.redis_url:
        checks["redis"] = _check_redis(settings.redis_url)
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return body, 200 if ready else 503, NO_STORE
