"""Security audit trail: the ``idp.audit`` logger and the audit_event table, never a secret."""

from __future__ import annotations

import logging
from typing import Any

from flask import has_request_context
from flask import request

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


def record(
    event: str,
    *,
    user_id: int | None = None,
    sid: str | None = None,
    rp: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit row to the current transaction and log it; the caller commits."""
    ip = user_agent = None
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
    db.get_session().add(row)
    logger.info(
        "%s user_id=%s sid=%s rp=%s ip=%s %s",
        event,
        user_id,
        sid,
        rp,
        ip,
        " ".join(f"{key}={value}" for key, value in sorted(clean.items())),
    )
    return row
