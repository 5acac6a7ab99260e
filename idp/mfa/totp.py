"""TOTP (RFC 6238) and recovery codes: pure functions, data and ``now`` in, values out.

pyotp computes the codes; this module adds what it leaves to the caller: the time-step a code
belongs to (so a replay within its window is refused), the secret's encryption at rest, the
enrolment QR code (segno, an inline SVG ``data:`` URI: no script, no CDN) and recovery codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Final

import pyotp
import segno
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DIGITS: Final = 6
PERIOD: Final = 30
# RFC 6238 §5.2: "We RECOMMEND that at most one time step is allowed as the network delay";
# one step either side also absorbs a phone clock a little off.
VALID_WINDOW: Final = 1
RECOVERY_CODE_COUNT: Final = 10
# 16 base32 characters: 80 random bits, so an unsalted SHA-256 is a safe way to store them.
RECOVERY_CODE_LENGTH: Final = 16
_RECOVERY_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
_FERNET_INFO: Final = b"idp totp secret v1"


class SecretUnreadableError(Exception):
    """The stored secret cannot be decrypted (the IdP's secret key changed)."""


def new_secret() -> str:
    """Return a fresh base32 secret of 160 bits (RFC 4226 §4 recommends 160)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """Return the ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_data_uri(uri: str) -> str:
    """Return the QR code of ``uri`` as an SVG ``data:`` URI (the CSP allows img-src data:)."""
    qr = segno.make(uri, error="m")
    data_uri: str = qr.svg_data_uri(scale=5, border=2, dark="#111", light="#fff")
    return data_uri


def time_step(now: datetime) -> int:
    """Return the RFC 6238 time-step counter T of ``now``."""
    return int(now.timestamp()) // PERIOD


def is_totp_shaped(code: str) -> bool:
    """Return whether ``code`` looks like a TOTP code (six ASCII digits)."""
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def match_step(secret: str, code: str, now: datetime, *, after: int | None) -> int | None:
    """Return the time-step ``code`` is valid for near ``now``, later than ``after``; else None.

    A step at or before ``after`` (the last one used) is a replay and never matches.
    """
    if not is_totp_shaped(code):
        return None
    generator = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = time_step(now)
    found = None
    # Every candidate is computed and compared, so timing tells nothing about which matched.
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        expected = generator.generate_otp(step)
        if hmac.compare_digest(expected.encode(), code.encode()) and (
            after is None or step > after
        ):
            found = step
    return found


def code_at(secret: str, now: datetime) -> str:
    """Return the code for ``now`` (the CLI and tests; pyotp's own ``at``)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(now)


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_FERNET_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(secret: str, secret_key: str) -> str:
    """Encrypt a TOTP secret for storage with a key derived from the IdP's secret key."""
    return _fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt_secret(token: str, secret_key: str) -> str:
    """Decrypt a stored TOTP secret.

    Raises:
        SecretUnreadableError: the secret key is not the one it was stored with.

    """
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError("the TOTP secret was stored under another secret key") from None


def new_recovery_codes() -> list[str]:
    """Return fresh recovery codes, formatted for reading (``abcd-efgh-ijkl-mnop``)."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """Return the code without spaces, dashes or case; None when it cannot be a recovery code."""
    cleaned = "".join(code.split()).replace("-", "").lower()
    if len(cleaned) != RECOVERY_CODE_LENGTH or not all(c in _RECOVERY_ALPHABET for c in cleaned):
        return None
    return cleaned


def hash_recovery_code(normalized: str) -> str:
    """Return the stored form of a normalized recovery code."""
    return hashlib.sha256(normalized.encode()).hexdigest()
