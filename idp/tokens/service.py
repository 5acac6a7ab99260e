"""Personal access tokens: create (the secret shown once), list, rename, revoke, authenticate.

Only the SHA-256 of a token is stored; audit rows name a token by its id and display prefix.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import Flask

from idp import audit
from idp import db
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.inputs import is_clean
from idp.models.oidc import hash_secret
from idp.models.token import PersonalAccessToken
from idp.models.user import User
from idp.settings import PAT_SCOPES
from idp.settings import get_settings
from idp.tokens import monitor
from idp.tokens import storage
from idp.tokens import usage
from idp.tokens.format import display_prefix
from idp.tokens.format import generate_token
from idp.tokens.format import is_well_formed
from idp.users import service as users

ADMIN_SCOPE = "admin"
MAX_NAME_LENGTH = 100
# last_used_at is rewritten at most this often from one address: a busy script does not
# turn every API call into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)
# The longest maximum lifetime an admin may set in the console (GitLab's cap).
MAX_POLICY_LIFETIME = 365


def init_app(app: Flask) -> None:
    """Subscribe to the user events that end tokens (users/ knows nothing of tokens)."""
    users.password_changed.connect(_revoke_on_password_change, sender=app)
    usage.init_app(app)
    monitor.init_app(app)


def _revoke_on_password_change(
    app: Flask, *, user: User, revoke_tokens: bool = False, **_: Any
) -> None:
    # GitHub's behaviour: a new password keeps the scripts running unless the user says so.
    if revoke_tokens:
        revoke_user_tokens(user, reason="password_changed")
        db.get_session().commit()


@dataclass(frozen=True)
class Policy:
    """What personal access tokens may be: the console's policy, else the configuration's."""

    enabled: bool
    max_lifetime: int
    allow_no_expiry: bool
    allowed_scopes: tuple[str, ...]
    # Who set it in the console and when; None: the configuration's IDP_PAT_* settings.
    updated_at: datetime | None = None
    updated_by: int | None = None


def get_policy() -> Policy:
    """Return the policy in force: the one an admin set, else the configuration's."""
    row = storage.get_policy()
    if row is not None:
        return Policy(
            row.pat_enabled,
            row.pat_max_lifetime,
            row.pat_allow_no_expiry,
            tuple(s for s in PAT_SCOPES if s in row.pat_allowed_scopes.split()),
            row.updated_at,
            row.updated_by,
        )
    settings = get_settings()
    return Policy(
        settings.pat_enabled,
        settings.pat_max_lifetime,
        settings.pat_allow_no_expiry,
        tuple(s for s in PAT_SCOPES if s in settings.pat_allowed_scopes.split()),
    )


def set_policy(
    *,
    enabled: bool,
    max_lifetime: int,
    allow_no_expiry: bool,
    allowed_scopes: list[str],
    actor: User,
) -> Policy:
    """Store the policy an admin chose (it wins over the configuration); audit; commit.

    Existing tokens keep their expiry and scopes; turning tokens off refuses every one at once.

    Raises:
        InvalidInputError: a lifetime outside 1..MAX_POLICY_LIFETIME days, an unknown scope
            or no scope; nothing is stored.

    """
    if not 1 <= max_lifetime <= MAX_POLICY_LIFETIME:
        raise InvalidInputError(f"the maximum lifetime must be 1 to {MAX_POLICY_LIFETIME} days")
    unknown = [scope for scope in allowed_scopes if scope not in PAT_SCOPES]
    if unknown:
        raise InvalidInputError(f"unknown scope {unknown[0]!r}")
    scopes = [scope for scope in PAT_SCOPES if scope in allowed_scopes]
    if not scopes:
        raise InvalidInputError("allow at least one scope")
    storage.save_policy(
        {
            "pat_enabled": enabled,
            "pat_max_lifetime": max_lifetime,
            "pat_allow_no_expiry": allow_no_expiry,
            "pat_allowed_scopes": " ".join(scopes),
            "updated_at": db.now(),
            "updated_by": actor.id,
        }
    )
    audit.record(
        "pat_policy_changed",
        user_id=actor.id,
        enabled=enabled,
        max_lifetime=max_lifetime,
        allow_no_expiry=allow_no_expiry,
        allowed_scopes=scopes,
    )
    db.get_session().commit()
    return get_policy()


def reset_policy(actor: User) -> bool:
    """Drop the console's policy: the configuration's applies again; audit; commit."""
    dropped = storage.delete_policy()
    if dropped:
        audit.record("pat_policy_reset", user_id=actor.id)
    db.get_session().commit()
    return dropped


def allowed_scopes(user: User, policy: Policy | None = None) -> list[str]:
    """Return the scopes ``user`` may put on a token, in the fixed list's order."""
    allowed = (policy or get_policy()).allowed_scopes
    return [s for s in allowed if s != ADMIN_SCOPE or user.is_admin]


def max_expiry(now: datetime) -> datetime:
    """Return the latest expiry the policy allows for a token created ``now``."""
    return now + timedelta(days=get_policy().max_lifetime)


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not is_clean(name):
        raise InvalidInputError(f"the token name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


def create_token(
    user: User, *, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[PersonalAccessToken, str]:
    """Create a token for ``user``; audit; commit. Return the row and the secret (shown once).

    Raises:
        InvalidInputError: tokens are off, the user is disabled, or the name, a scope or the
            expiry breaks the policy; nothing is stored.

    """
    policy = get_policy()
    if not policy.enabled:
        raise InvalidInputError("personal access tokens are turned off")
    if user.is_disabled:
        raise InvalidInputError("the account is disabled")
    name = _validate_name(name)
    allowed = allowed_scopes(user, policy)
    chosen = [scope for scope in PAT_SCOPES if scope in scopes]
    for scope in scopes:
        if scope not in allowed:
            raise InvalidInputError(f"scope {scope!r} is not allowed for this user")
    if not chosen:
        raise InvalidInputError("choose at least one scope")
    now = db.now()
    if expires_at is None:
        if not policy.allow_no_expiry:
            raise InvalidInputError("an expiry is required")
    elif expires_at <= now:
        raise InvalidInputError("the expiry must be in the future")
    elif expires_at > now + timedelta(days=policy.max_lifetime):
        raise InvalidInputError(f"the expiry must be at most {policy.max_lifetime} days from now")
    secret = generate_token()
    row = PersonalAccessToken(
        user_id=user.id,
        name=name,
        prefix=display_prefix(secret),
        secret_hash=hash_secret(secret),
        scopes=chosen,
        created_at=now,
        expires_at=expires_at,
    )
    storage.add_token(row)
    audit.record(
        "pat_created",
        user_id=user.id,
        token_id=row.id,
        prefix=row.prefix,
        scopes=chosen,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    db.get_session().commit()
    return row, secret


def list_tokens(
    user: User | None = None, *, after: int | None = None, limit: int | None = None
) -> list[PersonalAccessToken]:
    """Return tokens (revoked and expired included) in id order, of ``user`` or of everyone."""
    return storage.list_tokens(user_id=user.id if user else None, after=after, limit=limit)


def require_token(token_id: int, user: User | None = None) -> PersonalAccessToken:
    """Return the token with this id (of ``user``, when given).

    Raises:
        NotFoundError: no such token (or not theirs).

    """
    row = storage.get_token(token_id) if 0 < token_id < 2**31 else None
    if row is None or (user is not None and row.user_id != user.id):
        raise NotFoundError(f"no personal access token with id {token_id}")
    return row


def rename_token(row: PersonalAccessToken, name: str) -> None:
    """Give the token a new name; audit; commit.

    Raises:
        InvalidInputError: an empty or overlong name.

    """
    row.name = _validate_name(name)
    audit.record("pat_renamed", user_id=row.user_id, token_id=row.id, prefix=row.prefix)
    db.get_session().commit()


def _revoke(row: PersonalAccessToken, reason: str, now: datetime) -> bool:
    if row.revoked_at is not None:
        return False
    row.revoked_at = now
    audit.record(
        "pat_revoked", user_id=row.user_id, token_id=row.id, prefix=row.prefix, reason=reason
    )
    return True


def revoke_token(row: PersonalAccessToken, *, reason: str) -> bool:
    """Revoke the token now; audit; commit. Return False when it was already revoked."""
    revoked = _revoke(row, reason, db.now())
    db.get_session().commit()
    return revoked


def revoke_user_tokens(user: User, *, reason: str) -> int:
    """Revoke every live token of ``user``; audit each (the caller commits). Return how many."""
    now = db.now()
    return sum(_revoke(row, reason, now) for row in storage.list_tokens(user_id=user.id))


def is_token_active(row: PersonalAccessToken, now: datetime) -> bool:
    """Return whether the token works now: not revoked or expired, its owner not disabled."""
    if row.revoked_at is not None or row.user.is_disabled:
        return False
    return row.expires_at is None or now < row.expires_at


def find_active_token(token: str) -> PersonalAccessToken | None:
    """Return the live token ``token`` names, else None; record nothing.

    A malformed token (wrong length, alphabet or checksum) is refused before any query.
    """
    if not is_well_formed(token) or not get_policy().enabled:
        return None
    digest = hash_secret(token)
    row = storage.get_token_by_hash(digest)
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    monitor.check_account_change(row, lambda: revoke_token(row, reason="unusual_use"))
    return row if is_token_active(row, db.now()) else None


def note_use(row: PersonalAccessToken, ip: str | None) -> None:
    """Record that the token was used now (from ``ip``, when the caller is its holder)."""
    now = db.now()
    stale = row.last_used_at is None or now - row.last_used_at >= LAST_USED_GRANULARITY
    if stale or (ip is not None and ip != row.last_used_ip):
        row.last_used_at = now
        if ip is not None:
            row.last_used_ip = ip
        db.get_session().commit()


def authenticate(token: str, ip: str | None, *, resource: str) -> PersonalAccessToken | None:
    """Return the live token ``token`` names, noting its use from ``ip`` for ``resource``."""
    row = find_active_token(token)
    if row is None:
        return None
    note_use(row, ip)
    use = monitor.Use(
        usage.PAT,
        str(row.id),
        row.user,
        row.prefix,
        lambda: revoke_token(row, reason="unusual_use"),
    )
    # Revoked by a rule on this very use: the call is refused too.
    return None if monitor.observe(use, resource=resource) else row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def describe_token(row: PersonalAccessToken) -> dict[str, Any]:
    """Return the token as ``idp token list --json`` prints it (no secret)."""
    return {
        "id": row.id,
        "name": row.name,
        "user": row.user.email,
        "prefix": row.prefix,
        "scopes": list(row.scopes),
        "created_at": _iso(row.created_at),
        "expires_at": _iso(row.expires_at),
        "last_used_at": _iso(row.last_used_at),
        "last_used_ip": row.last_used_ip,
        "revoked_at": _iso(row.revoked_at),
    }
