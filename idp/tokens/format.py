"""The personal access token format: ``idp_pat_`` + 256 random bits + a CRC32, all base62.

Like GitHub's tokens: the fixed prefix lets secret scanners find a leaked token, and the
checksum lets us refuse a mistyped or truncated one before any database lookup.
"""

from __future__ import annotations

import secrets
import zlib

TOKEN_PREFIX = "idp_pat_"  # noqa: S105 (a prefix, not a secret)
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BYTES = 32
RANDOM_WIDTH = 43  # 62**43 > 2**256
CHECKSUM_WIDTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(TOKEN_PREFIX) + RANDOM_WIDTH + CHECKSUM_WIDTH
DISPLAY_LENGTH = 8  # characters after TOKEN_PREFIX shown in lists: the token's "prefix"
_DIGITS = frozenset(ALPHABET)


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_WIDTH)


def generate_token() -> str:
    """Return a new token string (57 characters)."""
    body = TOKEN_PREFIX + _base62(int.from_bytes(secrets.token_bytes(RANDOM_BYTES)), RANDOM_WIDTH)
    return body + _checksum(body)


def is_personal_access_token(value: str) -> bool:
    """Return whether ``value`` claims to be a personal access token (its prefix says so)."""
    return value.startswith(TOKEN_PREFIX)


def is_well_formed(value: str) -> bool:
    """Return whether ``value`` has the exact length, alphabet and checksum of our tokens."""
    if len(value) != TOKEN_LENGTH or not value.startswith(TOKEN_PREFIX):
        return False
    rest = value[len(TOKEN_PREFIX) :]
    if not _DIGITS.issuperset(rest):
        return False
    body, checksum = value[:-CHECKSUM_WIDTH], value[-CHECKSUM_WIDTH:]
    return secrets.compare_digest(_checksum(body), checksum)


def display_prefix(value: str) -> str:
    """Return the short part of a token shown in lists and audit rows (``idp_pat_XXXXXXXX``)."""
    return value[: len(TOKEN_PREFIX) + DISPLAY_LENGTH]
