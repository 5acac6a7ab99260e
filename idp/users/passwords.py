"""Argon2id password hashing (RFC 9106) with upgrade-on-login when parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2 import Type
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from flask import Flask
from flask import current_app

from idp.settings import Settings


def build_hasher(settings: Settings) -> PasswordHasher:
    """Return an Argon2id hasher with the configured cost parameters."""
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_cost,
        parallelism=settings.password_hash_parallelism,
        type=Type.ID,
    )


def init_app(app: Flask, settings: Settings) -> None:
    hasher = build_hasher(settings)
    app.extensions["idp.password_hasher"] = hasher
    # Verified when the account does not exist, so both paths cost the same time.
    app.extensions["idp.dummy_hash"] = hasher.hash("not a password of anyone")


def _hasher() -> PasswordHasher:
    hasher: PasswordHasher = current_app.extensions["idp.password_hasher"]
    return hasher


def hash_password(password: str) -> str:
    """Return an Argon2id hash of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Return whether ``password`` matches; an absent hash still costs one verification."""
    hasher = _hasher()
    try:
        return (
            hasher.verify(password_hash or current_app.extensions["idp.dummy_hash"], password)
            and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Return whether the hash was made with other parameters than the configured ones."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
