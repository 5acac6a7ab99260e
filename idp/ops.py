"""Operations endpoints: /healthz (alive), /readyz (database and Redis reachable), /metrics."""

from __future__ import annotations

import ipaddress
import logging

from flask import Blueprint
from flask import request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from idp import db
from idp import metrics
from idp.sessions import service as sessions
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


def _may_read_metrics() -> bool:
    # Like Keycloak's management port, metrics are for the operator's network only: who logs
    # in how often, which clients exist. The direct peer decides (not X-Forwarded-For, which
    # a client writes), and whatever a proxy relays is refused: the proxy itself is a peer
    # on the allowed network, so the public could read through it otherwise.
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    original = request.environ.get("werkzeug.proxy_fix.orig", {})
    peer = original.get("REMOTE_ADDR") or request.environ.get("REMOTE_ADDR") or ""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    allowed = get_settings().metrics_allowed_networks.split()
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)


@bp.route("/metrics", endpoint="metrics")
def metrics_view() -> ResponseReturnValue:
    if not _may_read_metrics():
        return {"error": "forbidden"}, 403, NO_STORE
    try:
        live: int | None = sessions.count_live_logins()
    except SQLAlchemyError:
        logger.warning("metrics: live sessions not counted, database unreachable", exc_info=True)
        live = None
    return metrics.expose(live), 200, {"Content-Type": CONTENT_TYPE_LATEST, **NO_STORE}
