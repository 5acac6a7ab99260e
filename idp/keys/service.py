"""Signing key operations shared by ``idp key`` and the admin API: list, rotate (audited)."""

from __future__ import annotations

from idp import audit
from idp import db
from idp.keys.store import KeyInfo
from idp.keys.store import get_key_store


def list_keys() -> list[KeyInfo]:
    """Return every signing key with its state now."""
    return get_key_store().list_keys(db.now())


def rotate_keys(*, immediate: bool = False) -> list[KeyInfo]:
    """Add a new key of each kind (signing at once with ``immediate``); audit; commit."""
    created = get_key_store().rotate(db.now(), immediate=immediate)
    for info in created:
        audit.record(
            "key_rotated",
            kid=info.kid,
            kind=info.kind,
            activates_at=info.activates_at.isoformat(),
        )
    db.get_session().commit()
    return created
