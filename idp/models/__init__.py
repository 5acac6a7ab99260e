"""Tables only: SQLAlchemy 2 typed models, no Flask imports."""

from __future__ import annotations

from idp.models.audit import AuditEvent
from idp.models.login import LoginSession
from idp.models.user import User

__all__ = ["AuditEvent", "LoginSession", "User"]
