"""Personal access tokens: only a SHA-256 hash of the secret and a short displayable prefix."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime
from idp.models.user import User


class PersonalAccessToken(Base):
    """A user's long-lived Bearer token for the IdP's own APIs (and introspection).

    Usage records (per token, IP network and hour) reference ``id``; the secret itself is
    never stored, only ``secret_hash`` (SHA-256 of the whole token string).
    """

    __tablename__ = "personal_access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # The first characters after ``idp_pat_``: enough to recognise a token in a list or a log.
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # None only when the policy allows tokens that never expire.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_ip: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")


class TokenUsage(Base):
    """How often one token was used from one IP network in one hour, for one resource.

    ``token_kind`` is ``pat``, ``access`` or ``refresh``; ``token_id`` the personal access
    token's id, the access token's issuance id, or (refresh) the family id's issuance root,
    so rotation does not look like a new token. Never a token value.
    """

    __tablename__ = "token_usage"
    __table_args__ = (UniqueConstraint("token_kind", "token_id", "network", "hour", "resource"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_kind: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    # The /24 (IPv4) or /48 (IPv6) the caller's address is in; ``ip`` is the last address.
    network: Mapped[str] = mapped_column(String(64))
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # What was called: "userinfo", "admin_api", "token" (a refresh), or the client_id of the
    # resource server that introspected the token (``introspected``: its network, not the holder's).
    resource: Mapped[str] = mapped_column(String(255))
    introspected: Mapped[bool] = mapped_column(Boolean, default=False)
    count: Mapped[int] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class SecurityNotice(Base):
    """A security event the user is told about on ``/account`` (and by e-mail, if set up).

    Unusual use of one of their tokens; named by kind, id and prefix, never by value.
    """

    __tablename__ = "security_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rule: Mapped[str] = mapped_column(String(32))
    token_kind: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str | None] = mapped_column(String(16))
    network: Mapped[str | None] = mapped_column(String(64))
    # "notified" or "revoked": what the IdP did about it.
    action: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TokenPolicy(Base):
    """The personal access token policy an admin set in the console (one row, ``id`` 1).

    Absent: the configuration's ``IDP_PAT_*`` settings apply. Present: it wins over them.
    """

    __tablename__ = "token_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    pat_enabled: Mapped[bool] = mapped_column(Boolean)
    pat_max_lifetime: Mapped[int] = mapped_column(Integer)
    pat_allow_no_expiry: Mapped[bool] = mapped_column(Boolean)
    # Space-separated, from the fixed list of scopes a token may carry.
    pat_allowed_scopes: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
