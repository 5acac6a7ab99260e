"""Second factors: TOTP enrolment, code checks, recovery codes, reset, the "MFA required" policy.

Code checks refuse replays and count toward the account's lockout (``idp/limits.py``).

Other kinds of factor (passkeys) plug in with :func:`register_factor`, so "does this user
have a second factor" and "reset this user's factors" cover them too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from flask import Flask
from flask import current_app

from idp import audit
from idp import db
from idp import limits
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.mfa import storage
from idp.mfa import totp
from idp.models.mfa import TotpFactor
from idp.models.user import User
from idp.settings import get_settings
from idp.users import passwords

# RFC 8176 §2: what a login with a one-time code adds to "pwd".
AMR_OTP: Final = ["otp", "mfa"]
_FACTORS: Final = "idp.mfa.factors"


@dataclass(frozen=True)
class Factor:
    """Another kind of second factor: how to tell a user has one, and how to remove them all."""

    name: str
    has: Callable[[User], bool]
    reset: Callable[[User], int]


@dataclass(frozen=True)
class Enrolment:
    """A TOTP secret being set up, shown to its user until a first code confirms it."""

    secret: str
    uri: str

    @property
    def qr(self) -> str:
        return totp.qr_data_uri(self.uri)


def init_app(app: Flask) -> None:
    app.extensions[_FACTORS] = []


def register_factor(app: Flask, factor: Factor) -> None:
    """Count ``factor`` as a second factor (login step, policy) and reset it with the others."""
    app.extensions[_FACTORS].append(factor)


def _other_factors() -> list[Factor]:
    factors: list[Factor] = current_app.extensions.get(_FACTORS, [])
    return factors


def _secret_key() -> str:
    return str(current_app.config["SECRET_KEY"])


def _issuer_name() -> str:
    # The label the authenticator app shows: the IdP's host (no port, no scheme).
    return urlsplit(get_settings().issuer).hostname or "idp"


def _enrolment(factor: TotpFactor, user: User) -> Enrolment:
    secret = totp.decrypt_secret(factor.secret_encrypted, _secret_key())
    return Enrolment(
        secret, totp.provisioning_uri(secret, account=user.email, issuer=_issuer_name())
    )


def get_totp(user: User) -> TotpFactor | None:
    """Return the user's confirmed TOTP factor, or None."""
    factor = storage.get_totp(user.id)
    return factor if factor is not None and factor.confirmed_at is not None else None


def has_second_factor(user: User) -> bool:
    """Return whether the user has any second factor (TOTP or a registered kind)."""
    return get_totp(user) is not None or any(factor.has(user) for factor in _other_factors())


def is_mfa_required(user: User) -> bool:
    """Return whether the policy (``mfa_required``, ``mfa_required_groups``) names ``user``."""
    settings = get_settings()
    if settings.mfa_required == "all" or (settings.mfa_required == "admins" and user.is_admin):
        return True
    names = {name.strip() for name in (settings.mfa_required_groups or "").split(",")}
    return any(group.name in names for group in user.groups)


def count_recovery_codes(user: User) -> int:
    """Return how many unused recovery codes the user has."""
    return storage.count_unused_recovery_codes(user.id)


def get_enrolment(user: User) -> Enrolment | None:
    """Return the TOTP enrolment in progress (not yet confirmed), or None."""
    factor = storage.get_totp(user.id)
    if factor is None or factor.confirmed_at is not None:
        return None
    try:
        return _enrolment(factor, user)
    except totp.SecretUnreadableError:
        return None


def start_enrolment(user: User) -> Enrolment:
    """Create a fresh, unconfirmed TOTP secret for ``user`` (replacing one in progress); commit.

    Raises:
        ConflictError: the user already has a confirmed TOTP factor.

    """
    existing = storage.get_totp(user.id)
    if existing is not None and existing.confirmed_at is not None:
        raise ConflictError("TOTP is already set up; turn it off first")
    storage.delete_totp(user.id)
    secret = totp.new_secret()
    now = db.now()
    storage.add_totp(
        TotpFactor(
            user_id=user.id,
            secret_encrypted=totp.encrypt_secret(secret, _secret_key()),
            created_at=now,
        )
    )
    audit.record("totp_enrolment_started", user_id=user.id)
    db.get_session().commit()
    return Enrolment(
        secret, totp.provisioning_uri(secret, account=user.email, issuer=_issuer_name())
    )


def confirm_enrolment(user: User, code: str) -> list[str]:
    """Turn the enrolment on with a first valid code; return new recovery codes; commit.

    Raises:
        InvalidInputError: no enrolment in progress, or the code is wrong.

    """
    factor = storage.get_totp(user.id)
    if factor is None or factor.confirmed_at is not None:
        raise InvalidInputError("start setting up TOTP first")
    now = db.now()
    try:
        secret = totp.decrypt_secret(factor.secret_encrypted, _secret_key())
    except totp.SecretUnreadableError:
        raise InvalidInputError("start setting up TOTP again") from None
    step = totp.match_step(secret, code.strip(), now, after=None)
    if step is None:
        raise InvalidInputError("that code is not the one your app shows now")
    factor.confirmed_at = now
    factor.last_used_step = step
    codes = _replace_recovery_codes(user)
    audit.record("mfa_enabled", user_id=user.id, factor="totp")
    db.get_session().commit()
    return codes


def enroll_now(user: User) -> Enrolment:
    """Give ``user`` a confirmed TOTP factor at once (an administrator's CLI); commit.

    Raises:
        ConflictError: the user already has one (reset it first).

    """
    enrolment = start_enrolment(user)
    factor = storage.get_totp(user.id)
    assert factor is not None  # noqa: S101 (just created)
    factor.confirmed_at = db.now()
    audit.record("mfa_enabled", user_id=user.id, factor="totp", by_admin=True)
    db.get_session().commit()
    return enrolment


def _replace_recovery_codes(user: User) -> list[str]:
    codes = totp.new_recovery_codes()
    hashes = [totp.hash_recovery_code(code.replace("-", "")) for code in codes]
    storage.replace_recovery_codes(user.id, hashes, db.now())
    return codes


def regenerate_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes by ten new ones, returned once; audit; commit."""
    codes = _replace_recovery_codes(user)
    audit.record("recovery_codes_regenerated", user_id=user.id)
    db.get_session().commit()
    return codes


def _check_totp(user: User, code: str) -> bool:
    factor = get_totp(user)
    if factor is None:
        return False
    try:
        secret = totp.decrypt_secret(factor.secret_encrypted, _secret_key())
    except totp.SecretUnreadableError:
        return False
    step = totp.match_step(secret, code, db.now(), after=factor.last_used_step)
    # The conditional UPDATE settles a race between two requests with one code.
    return step is not None and storage.claim_step(factor.id, step)


def verify_code(user: User, code: str) -> str | None:
    """Check a TOTP or recovery code of ``user``; return "totp" or "recovery", or None; commit.

    A locked account accepts no code. A code used once is refused (a TOTP code's time-step,
    or the recovery code itself); a wrong code counts toward the account's lockout.
    """
    code = code.strip()[:64]
    key = limits.account_key(user.email)
    if limits.is_locked(key):
        audit.record("login_failure", user_id=user.id, reason="locked", step="otp")
        db.get_session().commit()
        return None
    kind: str | None = None
    if totp.is_totp_shaped(code):
        kind = "totp" if _check_totp(user, code) else None
    else:
        normalized = totp.normalize_recovery_code(code)
        if normalized is not None and storage.use_recovery_code(
            user.id, totp.hash_recovery_code(normalized), db.now()
        ):
            kind = "recovery"
            audit.record(
                "recovery_code_used", user_id=user.id, remaining=count_recovery_codes(user)
            )
    if kind is None:
        audit.record("login_failure", user_id=user.id, reason="bad_otp", step="otp")
        db.get_session().commit()
        limits.record_failure(key, "account_locked", user_id=user.id)
        return None
    db.get_session().commit()
    return kind


def confirm_presence(user: User, *, code: str, password: str) -> bool:
    """Return whether a current code or the password proves the user is at the keyboard."""
    if code.strip():
        return verify_code(user, code) is not None
    if password and len(password) <= 1024:
        key = limits.account_key(user.email)
        if not limits.is_locked(key) and passwords.verify_password(user.password_hash, password):
            return True
        limits.record_failure(key, "account_locked", user_id=user.id)
    return False


def disable_totp(user: User) -> None:
    """Remove the user's TOTP factor and recovery codes (their own choice); audit; commit.

    Raises:
        InvalidInputError: the policy requires a second factor and this is the only one.

    """
    if is_mfa_required(user) and not any(factor.has(user) for factor in _other_factors()):
        raise InvalidInputError("your organisation requires a second factor; it stays on")
    storage.delete_totp(user.id)
    storage.delete_recovery_codes(user.id)
    audit.record("mfa_disabled", user_id=user.id, factor="totp")
    db.get_session().commit()


def reset_factors(user: User) -> int:
    """Remove every second factor of ``user`` (TOTP, recovery codes, registered kinds); commit.

    An administrator's act (CLI, admin API, admin console); audited as ``mfa_reset``. Returns
    how many factors went (recovery codes not counted).
    """
    removed = storage.delete_totp(user.id)
    storage.delete_recovery_codes(user.id)
    for factor in _other_factors():
        removed += factor.reset(user)
    audit.record("mfa_reset", user_id=user.id, removed=removed)
    db.get_session().commit()
    return removed
