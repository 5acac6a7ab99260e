"""People who can log in."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime


def new_subject() -> str:
    """Return a random, stable, non-reassignable subject identifier (OIDC Core §2 ``sub``)."""
    return secrets.token_hex(16)


user_group = Table(
    "user_group_member",
    Base.metadata,
    Column("user_id", ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    """A named set of users, released as ``groups`` (OIDC) and ``isMemberOf`` (SAML)."""

    __tablename__ = "user_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique constraint is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    subject: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the password last changed (None: never since it was set): tokens created before
    # it and still used are reported (idp/tokens/monitor.py).
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Loaded when read (the groups claim, isMemberOf, the MFA policy), not with every user:
    # most token, userinfo and session lookups never read them.
    groups: Mapped[list[Group]] = relationship(secondary=user_group, lazy="select")
