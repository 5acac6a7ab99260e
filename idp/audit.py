"""Security audit trail: the ``idp.audit`` logger and the audit_event table, never a secret."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from flask import g
from flask import has_app_context
from flask import has_request_context
from flask import request
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent

logger = logging.getLogger("idp.audit")

# Keys whose values are secrets: never stored, never logged, whoever passes them.
_SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "secret",
        "client_secret",
        "assertion",
        "otp",
        "logout_token",
    }
)


def redact(details: dict[str, Any]) -> dict[str, Any]:
    """Return details with every secret-looking value replaced by ``"[redacted]"``."""
    return {
        key: "[redacted]" if key.lower() in _SECRET_KEYS else value
        for key, value in details.items()
    }


# Rows added by record_many, for whoever counts committed events (metrics): a bulk INSERT
# puts no object in the session.
INSERTED_KEY = "idp.audit.inserted"


def _build(
    event: str, user_id: int | None, sid: str | None, rp: str | None, details: dict[str, Any]
) -> AuditEvent:
    """Return the audit row of one event (actor, IP and user agent of this request) and log it."""
    ip = user_agent = None
    if has_app_context() and "idp_audit_actor" in g:
        details = {**g.idp_audit_actor, **details}
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or None) and request.user_agent.string[:512]
    clean = redact(details)
    row = AuditEvent(
        at=db.now(),
        event=event,
        user_id=user_id,
        sid=sid,
        rp=rp,
        ip=ip,
        user_agent=user_agent,
        details=clean,
    )
    logger.info(
        "%s user_id=%s sid=%s rp=%s ip=%s %s",
        event,
        user_id,
        sid,
        rp,
        ip,
        " ".join(f"{key}={value}" for key, value in sorted(clean.items())),
        extra={
            "audit": {"event": event, "user_id": user_id, "sid": sid, "rp": rp, "ip": ip}
            | {"details": clean}
        },
    )
    return row


def record(
    event: str,
    *,
    user_id: int | None = None,
    sid: str | None = None,
    rp: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit row to the current transaction and log it; the caller commits."""
    row = _build(event, user_id, sid, rp, details)
    db.get_session().add(row)
    return row


def record_many(events: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Add an audit row per ``(event, fields)``, all in one INSERT; log each; the caller commits.

    ``fields`` holds ``user_id``, ``sid``, ``rp`` (each optional) and the details, as the
    keyword arguments of :func:`record` would.
    """
    if not events:
        return
    rows = [
        _build(
            event,
            fields.get("user_id"),
            fields.get("sid"),
            fields.get("rp"),
            {key: value for key, value in fields.items() if key not in ("user_id", "sid", "rp")},
        )
        for event, fields in events
    ]
    columns = ("at", "event", "user_id", "sid", "rp", "ip", "user_agent", "details")
    db.insert_rows(AuditEvent, [{name: getattr(row, name) for name in columns} for row in rows])
    db.get_session().info.setdefault(INSERTED_KEY, []).extend(rows)


def set_actor(*, user_id: int | None = None, client_id: str | None = None) -> None:
    """Name who acts (an admin user or a service account) in every record of this request."""
    actor: dict[str, Any] = {"actor_user_id": user_id} if user_id is not None else {}
    if client_id is not None:
        actor["actor_client_id"] = client_id
    g.idp_audit_actor = actor


def list_events(
    *,
    user_id: int | None = None,
    event: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """Return audit events matching the filters, newest (highest id) first, ids below ``before``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if user_id is not None:
        query = query.where(AuditEvent.user_id == user_id)
    if event is not None:
        query = query.where(AuditEvent.event == event)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(db.get_session().scalars(query))
