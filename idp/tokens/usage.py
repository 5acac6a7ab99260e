"""Token usage records: one row per token, IP network, hour and resource, with a count.

Every token the IdP sees used (personal access tokens, access tokens at userinfo and
introspection, refresh tokens at the token endpoint) is counted here; never its value.
Direct uses are written at once (the unusual-use rules read them); introspections, which
the rules ignore and a busy API makes on every call, are counted in memory and written in
one batch every few seconds, so the count costs an introspection no commit of its own.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import current_app
from flask import has_request_context
from flask import request
from sqlalchemy.exc import SQLAlchemyError

from idp import db
from idp.models.token import TokenUsage
from idp.sessions import logout
from idp.settings import get_settings
from idp.tokens import storage

PAT = "pat"
ACCESS = "access"
REFRESH = "refresh"
# The network a use is attributed to: a home or office line's usual neighbourhood.
IPV4_PREFIX = 24
IPV6_PREFIX = 48
MAX_USER_AGENT = 255
RECENT_USAGE_ROWS = 10
# Introspection counts wait in memory at most this long (by the app's clock) before a write;
# the periodic sweep and a stopping worker write them too.
INTROSPECTION_FLUSH = timedelta(seconds=5)
BUFFER = "idp.token_usage_buffer"

logger = logging.getLogger(__name__)


class UsageBuffer:
    """Introspection counts not yet written: one entry per usage row, with its count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._oldest: datetime | None = None

    def add(self, values: dict[str, Any]) -> bool:
        """Count one use; return whether the oldest waiting count is due to be written."""
        key = tuple(values[name] for name in KEY_COLUMNS)
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self._rows[key] = dict(values)
            else:
                row["count"] += 1
                row.update(last_seen=values["last_seen"], ip=values["ip"])
                row["user_agent"] = values["user_agent"]
            if self._oldest is None:
                self._oldest = values["last_seen"]
            due: bool = values["last_seen"] - self._oldest >= INTROSPECTION_FLUSH
            return due

    def take(self) -> list[dict[str, Any]]:
        """Return and forget every waiting count."""
        with self._lock:
            rows, self._rows, self._oldest = list(self._rows.values()), {}, None
        return rows


KEY_COLUMNS = ("token_kind", "token_id", "network", "hour", "resource", "introspected")


def init_app(app: Flask) -> None:
    """Keep introspection counts in a buffer; write them and purge old records periodically."""
    app.extensions[BUFFER] = UsageBuffer()
    logout.get_registry(app).periodic.extend([flush_usage, purge_usage])


def flush_usage() -> int:
    """Write the waiting introspection counts (one upsert per row); commit. Return how many."""
    buffer: UsageBuffer = current_app.extensions[BUFFER]
    rows = buffer.take()
    if not rows:
        return 0
    try:
        for values in rows:
            storage.upsert_usage(values)
        db.get_session().commit()
    except SQLAlchemyError as error:
        # Counts, not security state: an introspection must not fail for them.
        db.get_session().rollback()
        logger.warning("%d token usage count(s) lost: %s", len(rows), type(error).__name__)
        return 0
    return len(rows)


def network_of(ip: str) -> str:
    """Return the /24 (IPv4) or /48 (IPv6) ``ip`` is in; an IPv4-mapped address counts as IPv4."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def client_network() -> str | None:
    """Return the network of this request's client; None outside a request or for a non-IP."""
    if not has_request_context() or not request.remote_addr:
        return None
    try:
        return network_of(request.remote_addr)
    except ValueError:
        return None


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def record_use(
    kind: str,
    token_id: int | str,
    *,
    user_id: int | None,
    resource: str,
    introspected: bool = False,
    commit: bool = True,
) -> str | None:
    """Count one use of a token by this request's client; commit. Return its network.

    An introspection is counted in this process's buffer, written once the oldest waiting
    count is INTROSPECTION_FLUSH old (or by the periodic sweep, or as the worker stops).
    Outside a request, or from an address that is not an IP, nothing is recorded (None).
    ``commit=False`` leaves a direct use's row in the caller's transaction, which commits it
    (the refresh grant's rotation: one commit per refresh).
    """
    network = client_network()
    if network is None:
        return None
    now = db.now()
    user_agent = request.user_agent.string[:MAX_USER_AGENT] or None
    values = {
        "token_kind": kind,
        "token_id": str(token_id),
        "user_id": user_id,
        "network": network,
        "hour": hour_of(now),
        "resource": resource[:255],
        "introspected": introspected,
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "ip": request.remote_addr or "",
        "user_agent": user_agent,
    }
    if introspected:
        buffer: UsageBuffer = current_app.extensions[BUFFER]
        if buffer.add(values):
            flush_usage()
        return network
    storage.upsert_usage(values)
    if commit:
        db.get_session().commit()
    return network


def recent_usage(kind: str, token_id: int | str) -> list[TokenUsage]:
    """Return the token's latest usage rows (newest hour first)."""
    flush_usage()  # this process's waiting introspection counts first
    return storage.list_usage(kind, str(token_id), limit=RECENT_USAGE_ROWS)


def usage_of(keys: dict[str, list[str]], *, limit: int) -> list[TokenUsage]:
    """Return the latest usage rows of several tokens, given as ``{kind: [token_id, ...]}``."""
    flush_usage()
    return storage.list_usage_of(keys, limit=limit)


def purge_usage() -> int:
    """Delete a batch of usage records older than the retention; return how many."""
    before = db.now() - timedelta(days=get_settings().token_usage_retention)
    purged = storage.purge_usage(before)
    db.get_session().commit()
    return purged
