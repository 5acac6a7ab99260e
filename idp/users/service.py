"""User account operations shared by the CLI, the login and (later) the admin API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from blinker import Namespace
from flask import Flask
from flask import current_app

from idp import audit
from idp import db
from idp import limits
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.models.login import LoginSession
from idp.models.user import User
from idp.users import storage
from idp.users.passwords import hash_password
from idp.users.passwords import verify_password

# Deliberately simple (the HTML5 "valid e-mail address" shape); delivery is not our check.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
MAX_PASSWORD_LENGTH = 1024

# Users know nothing of login sessions: the sessions package subscribes to these (sender: the
# app) and ends the sessions, so the dependency runs one way, sessions -> users.
_signals = Namespace()
user_disabled = _signals.signal("user-disabled")
"""Sent with ``user`` once the account is disabled, before the commit."""
password_changed = _signals.signal("password-changed")
"""Sent with ``user``, ``keep_login`` (the session it was changed from, or None) and
``revoke_tokens`` (whether the user's personal access tokens go too)."""
user_deleted = _signals.signal("user-deleted")
"""Sent with ``user`` just before the account is deleted."""


def normalize_email(email: str) -> str:
    """Return the canonical (lower-cased, trimmed) form of an e-mail address.

    Raises:
        InvalidInputError: not an e-mail address.

    """
    value = email.strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidInputError(f"not a valid e-mail address: {email.strip()!r}")
    return value


def validate_password(password: str) -> None:
    """Refuse an empty or absurdly long password.

    Raises:
        InvalidInputError: the password is unusable.

    """
    if not password:
        raise InvalidInputError("the password is empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")


def get_user_by_email(email: str) -> User | None:
    """Return the user with this e-mail (any case), or None."""
    try:
        value = normalize_email(email)
    except InvalidInputError:
        return None
    return storage.get_user_by_email(value)


def require_user_by_email(email: str) -> User:
    """Return the user with this e-mail.

    Raises:
        NotFoundError: no such user.

    """
    user = get_user_by_email(email)
    if user is None:
        raise NotFoundError(f"no user with e-mail {email.strip()!r}")
    return user


def list_users(
    *, search: str | None = None, after: int | None = None, limit: int | None = None
) -> list[User]:
    """Return users in id order: those whose e-mail or name contains ``search`` (any case)."""
    return storage.list_users(search=search, after=after, limit=limit)


def require_user(user_id: int) -> User:
    """Return the user with this id.

    Raises:
        NotFoundError: no such user.

    """
    user = storage.get_user(user_id) if 0 < user_id < 2**31 else None
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


def _split_name(name: str) -> tuple[str | None, str | None]:
    parts = name.split()
    if len(parts) < 2:
        return (parts[0] if parts else None), None
    return " ".join(parts[:-1]), parts[-1]


def add_user(
    email: str,
    *,
    name: str,
    password: str | None = None,
    is_admin: bool = False,
    given_name: str | None = None,
    family_name: str | None = None,
) -> User:
    """Create a user and commit.

    Raises:
        InvalidInputError: malformed e-mail, empty name or unusable password.
        ConflictError: the e-mail is taken (case-insensitively).

    """
    value = normalize_email(email)
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInputError("the name must be 1 to 200 characters")
    if password is not None:
        validate_password(password)
    if storage.email_exists(value):
        raise ConflictError(f"a user with e-mail {value!r} already exists")
    guessed_given, guessed_family = _split_name(name)
    now = db.now()
    user = User(
        email=value,
        name=name,
        given_name=given_name if given_name is not None else guessed_given,
        family_name=family_name if family_name is not None else guessed_family,
        password_hash=hash_password(password) if password is not None else None,
        is_admin=is_admin,
        is_disabled=False,
        created_at=now,
        updated_at=now,
    )
    storage.add_user(user)
    audit.record("user_created", user_id=user.id, email=value, is_admin=is_admin)
    db.get_session().commit()
    return user


def set_password(
    user: User,
    password: str,
    keep_login: LoginSession | None = None,
    *,
    revoke_tokens: bool = False,
) -> None:
    """Replace the user's password hash and end every other session of theirs; commit.

    ``keep_login`` (the session the user changed it from) stays; whoever knew the old
    password is logged out everywhere else, and every app that joined those sessions hears.
    Personal access tokens keep working (GitHub's behaviour) unless ``revoke_tokens``.

    Raises:
        InvalidInputError: unusable password.

    """
    validate_password(password)
    user.password_hash = hash_password(password)
    user.updated_at = user.password_changed_at = db.now()
    audit.record("user_password_changed", user_id=user.id)
    password_changed.send(_app(), user=user, keep_login=keep_login, revoke_tokens=revoke_tokens)


def change_password(
    user: User,
    current_password: str,
    new_password: str,
    *,
    keep_login: LoginSession,
    revoke_tokens: bool = False,
) -> None:
    """Set a new password when the current one is right (see :func:`set_password`); commit.

    Raises:
        InvalidInputError: the current password is wrong (audited) or the new one unusable;
            the password and the sessions are left as they were.

    """
    if len(current_password) > MAX_PASSWORD_LENGTH or not verify_password(
        user.password_hash, current_password
    ):
        audit.record("password_change_refused", user_id=user.id, sid=keep_login.sid)
        db.get_session().commit()
        raise InvalidInputError("the current password is wrong")
    set_password(user, new_password, keep_login=keep_login, revoke_tokens=revoke_tokens)


def disable_user(email: str) -> User:
    """Disable the account and end its login sessions; commit.

    Raises:
        NotFoundError: no such user.

    """
    user = require_user_by_email(email)
    set_disabled(user, True)
    return user


def unlock_user(user: User) -> bool:
    """Lift a brute-force lockout of the account and forget its failures; commit.

    Return whether it was locked. Audited either way (an admin acted).
    """
    was_locked = limits.unlock(limits.account_key(user.email))
    audit.record("account_unlocked", user_id=user.id, was_locked=was_locked)
    db.get_session().commit()
    return was_locked


def get_lockouts(users: list[User]) -> dict[int, datetime]:
    """Return, by user id, when the brute-force lockout of each locked account ends."""
    keys = {limits.account_key(user.email): user.id for user in users}
    return {keys[key]: until for key, until in limits.locked_until(list(keys)).items()}


def set_disabled(user: User, disabled: bool) -> None:
    """Disable (ending every session of theirs everywhere) or enable the account; commit."""
    if user.is_disabled != disabled:
        user.is_disabled = disabled
        user.updated_at = db.now()
        audit.record("user_disabled" if disabled else "user_enabled", user_id=user.id)
        if disabled:
            user_disabled.send(_app(), user=user)
    db.get_session().commit()


def update_user(
    user: User,
    *,
    email: str | None = None,
    name: str | None = None,
    given_name: str | None = None,
    family_name: str | None = None,
    is_admin: bool | None = None,
) -> User:
    """Change the user's profile or admin right; audit; commit. None leaves a field alone.

    Raises:
        InvalidInputError: a malformed e-mail or name.
        ConflictError: the e-mail is another user's.

    """
    changed: dict[str, Any] = {}
    if email is not None:
        value = normalize_email(email)
        if value != user.email:
            if storage.email_exists(value):
                raise ConflictError(f"a user with e-mail {value!r} already exists")
            changed["email"] = value
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInputError("the name must be 1 to 200 characters")
        changed["name"] = name
    for key, part in (("given_name", given_name), ("family_name", family_name)):
        if part is not None:
            if len(part.strip()) > 100:
                raise InvalidInputError(f"{key} must be at most 100 characters")
            changed[key] = part.strip() or None
    if is_admin is not None:
        changed["is_admin"] = is_admin
    changed = {key: value for key, value in changed.items() if getattr(user, key) != value}
    for key, value in changed.items():
        setattr(user, key, value)
    if changed:
        user.updated_at = db.now()
        audit.record("user_updated", user_id=user.id, fields=sorted(changed))
    db.get_session().commit()
    return user


def _app() -> Flask:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return app


def delete_user(user: User) -> None:
    """Delete the account: every session of theirs ends everywhere first; commit.

    Their sessions, tokens, codes, consents, group memberships and SAML persistent NameIDs
    go with them; audit rows stay, naming the user by id.
    """
    user_deleted.send(_app(), user=user)
    user_id, email = user.id, user.email
    session = db.get_session()
    session.delete(user)
    session.flush()
    audit.record("user_deleted", user_id=user_id, email=email)
    session.commit()
