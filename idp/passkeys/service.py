"""Passkeys for a user: enrol, list, rename, remove; sign in or confirm a login with one.

Each ceremony's challenge lives server-side, bound to this browser's session by a random
handle only that session holds; it is used once (the first try takes it) and lives
``CEREMONY_TTL``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from flask import session
from sqlalchemy.exc import IntegrityError
from webauthn.helpers.structs import AuthenticationCredential

from idp import audit
from idp import db
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.inputs import is_clean
from idp.models.login import LoginSession
from idp.models.passkey import Passkey
from idp.models.passkey import PasskeyChallenge
from idp.models.user import User
from idp.passkeys import ceremonies
from idp.passkeys import storage
from idp.passkeys.ceremonies import PasskeyError
from idp.settings import get_settings

__all__ = [
    "PasskeyError",
    "begin_authentication",
    "begin_login",
    "begin_registration",
    "count_by_user",
    "count_for_user",
    "delete_all_for_user",
    "finish_login",
    "finish_registration",
    "is_recent_login",
    "list_passkeys",
    "remove_passkey",
    "rename_passkey",
    "verify_assertion_for_user",
]

# Adding or removing a passkey needs a login (password or passkey) this recent.
RECENT_LOGIN = timedelta(minutes=10)
MAX_NAME_LENGTH = 100
_SESSION_KEY = "idp_passkey_ceremony"
REGISTER = "register"
LOGIN = "login"
SECOND_FACTOR = "second_factor"


def relying_party() -> ceremonies.RelyingParty:
    """Return this IdP as a WebAuthn Relying Party (RP ID: the issuer's host)."""
    return ceremonies.build_relying_party(get_settings().issuer)


def user_handle(user: User) -> bytes:
    """Return the WebAuthn user handle of ``user``: its random subject, never an address."""
    return user.subject.encode()


def is_recent_login(login: LoginSession) -> bool:
    """Return whether the login authenticated recently enough to add or remove a passkey."""
    return db.now() - login.auth_time <= RECENT_LOGIN


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


def _begin(purpose: str, user_id: int | None) -> bytes:
    """Store a fresh challenge for this browser session (replacing any earlier one); commit."""
    now = db.now()
    old = session.get(_SESSION_KEY)
    if isinstance(old, str):
        storage.drop_challenge(_hash(old))
    handle = secrets.token_urlsafe(32)
    challenge = secrets.token_bytes(32)
    row = PasskeyChallenge(
        key_hash=_hash(handle),
        purpose=purpose,
        user_id=user_id,
        challenge=challenge,
        expires_at=now + ceremonies.CEREMONY_TTL,
    )
    storage.add_challenge(row, now)
    db.get_session().commit()
    session[_SESSION_KEY] = handle
    return challenge


def _take(purpose: str, user_id: int | None) -> bytes:
    """Use up this session's challenge; commit. Raises PasskeyError unless it is live and ours."""
    handle = session.pop(_SESSION_KEY, None)
    if not isinstance(handle, str) or len(handle) > 100:
        raise PasskeyError("no ceremony in progress")
    row = storage.take_challenge(_hash(handle))
    db.get_session().commit()
    if row is None or row.expires_at <= db.now():
        raise PasskeyError("challenge unknown, used or expired")
    if row.purpose != purpose or row.user_id != user_id:
        raise PasskeyError("challenge of another ceremony")
    return row.challenge


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not is_clean(name):
        raise InvalidInputError(f"the passkey name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


# -- registration ----------------------------------------------------------------------------


def begin_registration(user: User) -> str:
    """Start enrolling a passkey for ``user``; return the ``create()`` options (JSON); commit."""
    challenge = _begin(REGISTER, user.id)
    return ceremonies.build_registration_options(
        relying_party(),
        user_handle=user_handle(user),
        user_name=user.email,
        display_name=user.name or user.email,
        exclude=storage.list_credential_ids(user.id),
        challenge=challenge,
    )


def finish_registration(user: User, credential_json: str, name: str) -> Passkey:
    """Verify the authenticator's attestation and store the passkey; audit; commit.

    Raises:
        InvalidInputError: the name is empty or too long (the ceremony stays usable).
        PasskeyError: the response failed a check, or that credential is already enrolled;
            the challenge is used up and nothing is stored.

    """
    name = _validate_name(name)
    try:
        challenge = _take(REGISTER, user.id)
        credential = ceremonies.parse_registration(credential_json)
        verified = ceremonies.verify_registration(relying_party(), credential, challenge)
        key = ceremonies.credential_key(verified.credential_id)
        if storage.get_passkey_by_credential_id(key) is not None:
            raise PasskeyError("credential already enrolled")
    except PasskeyError as error:
        audit.record("passkey_registration_failed", user_id=user.id, reason=str(error)[:200])
        db.get_session().commit()
        raise
    transports = [str(item.value) for item in credential.response.transports or []]
    passkey = Passkey(
        user_id=user.id,
        credential_id=key,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        aaguid=verified.aaguid,
        transports=transports,
        device_type=str(verified.credential_device_type.value),
        backed_up=verified.credential_backed_up,
        created_at=db.now(),
    )
    storage.add_passkey(passkey)
    try:
        db.get_session().flush()
    except IntegrityError:  # the same credential enrolled concurrently
        db.get_session().rollback()
        raise PasskeyError("credential already enrolled") from None
    audit.record("passkey_added", user_id=user.id, passkey_id=passkey.id, name=name)
    db.get_session().commit()
    return passkey


# -- authentication --------------------------------------------------------------------------


def begin_login() -> str:
    """Start a passwordless login: ``get()`` options for any discoverable passkey; commit."""
    return ceremonies.build_authentication_options(
        relying_party(), allow=None, challenge=_begin(LOGIN, None)
    )


def begin_authentication(user_id: int) -> str:
    """Start confirming ``user_id``'s login with one of their passkeys (a second factor).

    Return the ``get()`` options (JSON) listing the user's credentials; commit. Finish with
    ``verify_assertion_for_user``.
    """
    return ceremonies.build_authentication_options(
        relying_party(),
        allow=storage.list_credential_ids(user_id),
        challenge=_begin(SECOND_FACTOR, user_id),
    )


def _fail(reason: str, *, user_id: int | None, **details: Any) -> PasskeyError:
    audit.record("login_failure", user_id=user_id, method="passkey", reason=reason, **details)
    db.get_session().commit()
    return PasskeyError(reason)


def _verify(
    passkey: Passkey, credential: AuthenticationCredential, challenge: bytes
) -> tuple[Passkey, bool]:
    """Check the assertion against ``passkey``, then its counter; update it; commit.

    Return the passkey and whether the user was verified. Raises PasskeyError (audited).
    """
    try:
        verified = ceremonies.verify_assertion(
            relying_party(), credential, challenge=challenge, public_key=passkey.public_key
        )
    except PasskeyError as error:
        raise _fail("bad_assertion", user_id=passkey.user_id, detail=str(error)[:200]) from None
    locked = storage.lock_passkey(passkey.id)
    if locked is None:
        raise _fail("unknown_credential", user_id=passkey.user_id)
    if ceremonies.is_sign_count_regression(locked.sign_count, verified.new_sign_count):
        # A counter that goes back means two copies of the key exist (§6.1.1): refuse it.
        audit.record(
            "passkey_sign_count_regression",
            user_id=locked.user_id,
            passkey_id=locked.id,
            stored=locked.sign_count,
            received=verified.new_sign_count,
        )
        raise _fail("sign_count_regression", user_id=locked.user_id, passkey_id=locked.id)
    if locked.user.is_disabled:
        raise _fail("disabled", user_id=locked.user_id)
    locked.sign_count = verified.new_sign_count
    locked.backed_up = verified.credential_backed_up
    locked.last_used_at = db.now()
    db.get_session().commit()
    return locked, verified.user_verified


def _check_assertion(
    purpose: str, user_id: int | None, credential_json: str
) -> tuple[Passkey, bool]:
    """Run every check of an assertion answering this session's challenge; commit.

    ``user_id`` None: a passwordless login, where the user handle is required and names the
    owner; else the credential must be that user's. Return the passkey and whether the
    authenticator verified the user.
    """
    try:
        challenge = _take(purpose, user_id)
    except PasskeyError as error:
        raise _fail("challenge", user_id=user_id, detail=str(error)) from None
    try:
        credential = ceremonies.parse_assertion(credential_json)
    except PasskeyError as error:
        raise _fail("malformed", user_id=user_id, detail=str(error)[:200]) from None
    passkey = storage.get_passkey_by_credential_id(ceremonies.credential_key(credential.raw_id))
    # Another user's credential is refused like an unknown one (§7.2 step 6).
    if passkey is None or (user_id is not None and passkey.user_id != user_id):
        raise _fail("unknown_credential", user_id=user_id)
    returned = credential.response.user_handle
    # §7.2 step 6: a user handle, required of a discoverable credential, names its owner.
    if (returned or user_id is None) and not hmac.compare_digest(
        returned or b"", user_handle(passkey.user)
    ):
        raise _fail("user_handle_mismatch", user_id=passkey.user_id)
    return _verify(passkey, credential, challenge)


def finish_login(credential_json: str) -> tuple[User, list[str]]:
    """Verify a passwordless login; return the user and the ``amr`` to record.

    The credential is looked up by its ID; the user handle it returns must be its owner's.

    Raises:
        PasskeyError: no live challenge, a malformed or wrong assertion, an unknown
            credential, a counter that went back, or a disabled user (all audited).

    """
    passkey, user_verified = _check_assertion(LOGIN, None, credential_json)
    if not user_verified:
        # Alone, a passkey must be two factors: possession and the PIN or biometrics that
        # unlocked it (the options required it; an authenticator that skipped it is refused).
        raise _fail("user_not_verified", user_id=passkey.user_id)
    # RFC 8176 §2: "hwk" proof of possession of a hardware-secured key, "mfa" with the user
    # verification that came with it.
    return passkey.user, ["hwk", "mfa"]


def verify_assertion_for_user(user_id: int, credential_json: str) -> list[str]:
    """Verify a passkey as the second factor of ``user_id``'s login (``begin_authentication``).

    Return the ``amr`` values of this factor (``["hwk", "mfa"]``: with the password checked
    before, two factors); the caller adds the first factor's (``pwd``).

    Raises:
        PasskeyError: no live challenge for this user, a malformed or wrong assertion, a
            credential that is not this user's, a counter that went back, or a disabled
            user (all audited).

    """
    _check_assertion(SECOND_FACTOR, user_id, credential_json)
    return ["hwk", "mfa"]


# -- management ------------------------------------------------------------------------------


def list_passkeys(user: User) -> list[Passkey]:
    """Return the user's passkeys, oldest first."""
    return storage.list_passkeys(user.id)


def count_for_user(user_id: int) -> int:
    """Return how many passkeys the user has."""
    return storage.count_passkeys(user_id)


def count_by_user(user_ids: list[int]) -> dict[int, int]:
    """Return how many passkeys each of these users has (absent: none), in one query."""
    return storage.count_by_user(user_ids) if user_ids else {}


def require_passkey(user: User, passkey_id: int) -> Passkey:
    """Return the user's passkey with this id.

    Raises:
        NotFoundError: the user has no such passkey (another user's is not told apart).

    """
    passkey = storage.get_passkey(passkey_id, user.id)
    if passkey is None:
        raise NotFoundError("no such passkey")
    return passkey


def rename_passkey(user: User, passkey_id: int, name: str) -> Passkey:
    """Rename one of the user's passkeys; audit; commit.

    Raises:
        NotFoundError: no such passkey of this user.
        InvalidInputError: an empty or overlong name.

    """
    passkey = require_passkey(user, passkey_id)
    passkey.name = _validate_name(name)
    audit.record("passkey_renamed", user_id=user.id, passkey_id=passkey.id)
    db.get_session().commit()
    return passkey


def remove_passkey(user: User, passkey_id: int) -> Passkey:
    """Delete one of the user's passkeys; audit; commit.

    Raises:
        NotFoundError: no such passkey of this user.

    """
    passkey = require_passkey(user, passkey_id)
    storage.delete_passkey(passkey)
    audit.record("passkey_removed", user_id=user.id, passkey_id=passkey.id, name=passkey.name)
    db.get_session().commit()
    return passkey


def delete_all_for_user(user_id: int) -> int:
    """Delete every passkey of the user (a factor reset); audit; commit. Return how many."""
    count = storage.delete_user_passkeys(user_id)
    if count:
        audit.record("passkeys_deleted", user_id=user_id, count=count)
    db.get_session().commit()
    return count
