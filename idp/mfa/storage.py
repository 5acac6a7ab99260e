"""The only SQL in ``mfa/``: TOTP factors and recovery codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update

from idp import db
from idp.models.mfa import RecoveryCode
from idp.models.mfa import TotpFactor


def get_totp(user_id: int) -> TotpFactor | None:
    """Return the user's TOTP factor (confirmed or still being enrolled), or None."""
    return db.get_session().scalar(select(TotpFactor).where(TotpFactor.user_id == user_id))


def add_totp(factor: TotpFactor) -> None:
    session = db.get_session()
    session.add(factor)
    session.flush()


def claim_step(factor_id: int, step: int) -> bool:
    """Record ``step`` as the last one used, unless it (or a later one) already was.

    One conditional UPDATE: of two requests with the same code, exactly one wins.
    """
    result = cast(
        CursorResult[Any],
        db.get_session().execute(
            update(TotpFactor)
            .where(
                TotpFactor.id == factor_id,
                or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def delete_totp(user_id: int) -> int:
    """Delete the user's TOTP factor; return how many rows went."""
    result = cast(
        CursorResult[Any],
        db.get_session().execute(delete(TotpFactor).where(TotpFactor.user_id == user_id)),
    )
    return result.rowcount


def replace_recovery_codes(user_id: int, hashes: list[str], now: datetime) -> None:
    """Replace every recovery code of the user by the ones hashed in ``hashes``."""
    session = db.get_session()
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all(RecoveryCode(user_id=user_id, code_hash=h, created_at=now) for h in hashes)
    session.flush()


def delete_recovery_codes(user_id: int) -> int:
    result = cast(
        CursorResult[Any],
        db.get_session().execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id)),
    )
    return result.rowcount


def use_recovery_code(user_id: int, code_hash: str, now: datetime) -> bool:
    """Spend the unused code with this hash; return False when there is none (or it was used)."""
    result = cast(
        CursorResult[Any],
        db.get_session().execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == code_hash,
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def count_unused_recovery_codes(user_id: int) -> int:
    count = db.get_session().scalar(
        select(func.count(RecoveryCode.id)).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    )
    return int(count or 0)
