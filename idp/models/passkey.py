"""Passkeys (WebAuthn credentials) and the server-side challenges of their ceremonies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime
from idp.models.user import User


class Passkey(Base):
    """One WebAuthn public key credential of a user (a passkey or a security key).

    Only public data is stored: the credential ID, its COSE public key and the signature
    counter; the private key never leaves the authenticator.
    """

    __tablename__ = "passkey"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    # base64url of the credential ID (at most 1023 bytes, WebAuthn §5.8.3): one owner each.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's signature counter: 32 bits unsigned (WebAuthn §6.1.1).
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    aaguid: Mapped[str | None] = mapped_column(String(36))
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    # "multi_device" (a synced passkey) or "single_device" (a hardware key).
    device_type: Mapped[str] = mapped_column(String(20))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")


class PasskeyChallenge(Base):
    """A ceremony's challenge, kept server-side for one browser session, used once, briefly.

    ``key_hash`` is the SHA-256 of a random handle that only that browser's session holds.
    """

    __tablename__ = "passkey_challenge"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "register", "login" (passwordless) or "second_factor".
    purpose: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
