"""Failure counters of the brute-force defence (used when no Redis is configured)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from idp.db import Base
from idp.db import UTCDateTime


class FailureCounter(Base):
    """Failures of one account or client (keyed by a keyed hash) in the current window."""

    __tablename__ = "failure_counter"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    count: Mapped[int]
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
