"""The IdP's own login session, shared by every protocol."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime
from idp.models.user import User


class LoginSession(Base):
    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public session id: the OIDC ``sid`` and the SAML SessionIndex key; not a credential.
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    # SHA-256 of the browser's secret cookie token: a database leak yields no usable cookie.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    user: Mapped[User] = relationship(lazy="joined")


class SessionParticipant(Base):
    """A relying party (OIDC client or SAML SP) that received tokens or assertions in a session."""

    __tablename__ = "session_participant"
    __table_args__ = (UniqueConstraint("login_session_id", "protocol", "rp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    login_session_id: Mapped[int] = mapped_column(
        ForeignKey("login_session.id", ondelete="CASCADE"), index=True
    )
    protocol: Mapped[str] = mapped_column(String(8))  # "oidc" or "saml"
    rp: Mapped[str] = mapped_column(String(1024))  # client_id or SP entity ID
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    logged_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LogoutDelivery(Base):
    """A back-channel logout message for one RP, retried with back-off until it lands or expires."""

    __tablename__ = "logout_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(8))  # "oidc" or "saml": which sender sends it
    rp: Mapped[str] = mapped_column(String(1024), index=True)  # client_id or SP entity ID
    login_session_id: Mapped[int] = mapped_column(
        ForeignKey("login_session.id", ondelete="CASCADE"), index=True
    )
    uri: Mapped[str] = mapped_column(String(2000))
    # No message is stored: each attempt signs a fresh, short-lived one.
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(String(300))

    login: Mapped[LoginSession] = relationship(lazy="joined")
