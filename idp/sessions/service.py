"""Login session lifecycle: authenticate, start, find, touch, expire and end (flask-login glue).

Over 400 lines: it is the one door to the shared login for every protocol and the admin tools
(start, find, step up, end, list, describe); each function is short, and splitting them would
give other packages two modules to go through instead of one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask import request
from flask import session
from flask import url_for
from flask_login import LoginManager
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.wrappers import Response

from idp import audit
from idp import db
from idp import limits
from idp.errors import NotFoundError
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.models.user import User
from idp.sessions import cache
from idp.sessions import logout
from idp.sessions import storage
from idp.settings import Settings
from idp.settings import get_settings
from idp.users import passwords
from idp.users import service as users

# Levels of assurance (Keycloak's convention): "1" one factor, "2" several factors.
ACR_SINGLE_FACTOR = "1"
ACR_MULTI_FACTOR = "2"

# The revoked_reason of a session its own user ended from another one (/account/sessions).
REVOKED_BY_USER = "revoked_by_user"

# last_seen_at is written at most this often, so browsing does not write on every request.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass
class CurrentLogin:
    """What flask-login calls the current user: a live login session and its user."""

    login: LoginSession
    token: str
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    @property
    def user(self) -> User:
        return self.login.user

    def get_id(self) -> str:
        return self.token


def hash_token(token: str) -> str:
    """Return the stored form of a browser session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_login_active(login: LoginSession, now: datetime) -> bool:
    """Return whether the session is neither revoked nor idle- nor absolutely expired."""
    if login.revoked_at is not None or login.user.is_disabled:
        return False
    return now < login.expires_at and now < login.last_seen_at + get_settings().session_idle_timeout


def effective_expiry(login: LoginSession) -> datetime:
    """Return when the session ends if nothing else happens (idle or absolute, the sooner)."""
    return min(login.expires_at, login.last_seen_at + get_settings().session_idle_timeout)


def _touch_due(login: LoginSession) -> datetime:
    return login.last_seen_at + TOUCH_INTERVAL


def _load_login(token: str) -> CurrentLogin | None:
    token_hash = hash_token(token)
    now = db.now()
    # The cached record is used only while it says live and needs no last_seen_at write; a
    # record that says otherwise may be older than the row, so the database decides.
    seen = cache.lookup(token_hash)
    if seen.login is not None and is_login_active(seen.login, now) and now < _touch_due(seen.login):
        attached = cache.attach(seen.login)
        if attached is not None:
            return CurrentLogin(login=attached, token=token)
    login = storage.get_login_by_token_hash(token_hash)
    if login is None:
        return None
    # The stored hash came from this token; compare anyway so no timing hint is left.
    if not hmac.compare_digest(login.token_hash, token_hash):
        return None
    if not is_login_active(login, now):
        return None
    if now >= _touch_due(login):
        login.last_seen_at = now
        db.get_session().commit()
    if seen.version is not None:
        cache.fill(login, seen.version, now, min(_touch_due(login), effective_expiry(login)))
    return CurrentLogin(login=login, token=token)


def init_app(app: Flask, settings: Settings) -> None:
    """Wire flask-login and the password hasher into ``app``."""
    passwords.init_app(app, settings)
    manager = LoginManager()
    manager.session_protection = None  # the server-side session is the authority
    manager.user_loader(_load_login)
    manager.unauthorized_handler(lambda: redirect_to_login(request.full_path))
    manager.init_app(app)
    app.extensions["idp.login_manager"] = manager
    cache.init_app(app, settings)
    logout.init_app(app)
    logout.get_registry(app).sweeps.extend((expire_stale_logins, purge_ended_logins))
    users.user_disabled.connect(_end_sessions_of_disabled_user, sender=app)
    users.password_changed.connect(_end_other_sessions, sender=app)
    users.user_deleted.connect(_end_sessions_of_deleted_user, sender=app)


def _end_sessions_of_disabled_user(app: Flask, *, user: User) -> None:
    revoke_user_sessions(user, reason="user_disabled")


def _end_sessions_of_deleted_user(app: Flask, *, user: User) -> None:
    revoke_user_sessions(user, reason="user_deleted")


def _end_other_sessions(
    app: Flask, *, user: User, keep_login: LoginSession | None, **_: Any
) -> None:
    # Whoever knew the old password is logged out everywhere but where it was changed.
    revoke_user_sessions(user, reason="password_changed", keep=keep_login)


def authenticate(email: str, password: str) -> User | None:
    """Return the user when the credentials are right and the account usable, else None.

    Costs one Argon2 verification on every path, so timing does not reveal whether the
    account exists or is locked; a locked account refuses even the right password.
    """
    user = users.get_user_by_email(email)
    ok = passwords.verify_password(user.password_hash if user else None, password)
    # Unknown accounts are counted too, so a lockout tells nothing about existence.
    key = limits.account_key(email)
    locked = limits.is_locked(key)
    if user is None or not ok or user.is_disabled or locked:
        reason = "locked" if locked else "disabled" if user and ok else "bad_credentials"
        audit.record("login_failure", user_id=user.id if user else None, reason=reason)
        db.get_session().commit()
        if reason == "bad_credentials":
            limits.record_failure(key, "account_locked", user_id=user.id if user else None)
        return None
    assert user.password_hash is not None  # noqa: S101  (ok implies a hash)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        audit.record("password_rehashed", user_id=user.id)
    return user


def acr_of(amr: list[str]) -> str:
    """Return the level of assurance of a login made with the methods ``amr`` (RFC 8176)."""
    return ACR_MULTI_FACTOR if "mfa" in amr else ACR_SINGLE_FACTOR


def start_login(user: User, *, amr: list[str]) -> LoginSession:
    """Create a login session for ``user`` and bind it to this browser; commit."""
    now = db.now()
    token = secrets.token_urlsafe(32)
    login = LoginSession(
        sid=secrets.token_hex(16),
        token_hash=hash_token(token),
        user=user,
        created_at=now,
        last_seen_at=now,
        expires_at=now + get_settings().session_absolute_timeout,
        auth_time=now,
        amr=amr,
        acr=acr_of(amr),
        ip=request.remote_addr,
        user_agent=(request.user_agent.string or "")[:512] or None,
        details={},
    )
    storage.add_login(login)
    audit.record("login_success", user_id=user.id, sid=login.sid, amr=amr)
    db.get_session().commit()
    # A fresh cookie session on every login: a planted pre-login session is worth nothing.
    session.clear()
    login_user(CurrentLogin(login=login, token=token))
    return login


def current_login() -> LoginSession | None:
    """Return the live login session of this browser, or None."""
    if not current_user.is_authenticated:
        return None
    login: LoginSession = current_user.login
    return login


def end_logins(
    logins: Sequence[LoginSession],
    reason: str,
    *,
    initiator: tuple[str, str] | None = None,
    also_record: str | None = None,
    best_effort: bool = False,
) -> list[LoginSession]:
    """End login sessions everywhere in one transaction; commit. Return the ones this call ended.

    Every way a session ends comes here, for one session or many, at the cost of one
    statement per table whatever their number: their cached records dropped, one
    conditional UPDATE of the sessions, one INSERT of their ``session_revoked`` audit rows,
    and each protocol's handler (tokens revoked, logout messages queued); after the commit
    the back-channel deliveries go out. ``initiator`` (protocol, rp) asked for the end
    itself: it is sent no back-channel logout. ``also_record``: an audit event recorded for
    each of ``logins`` in the same transaction (the logout form's ``logout``), ended now or
    before. ``best_effort``: the cached records are dropped if the cache answers, and the
    sessions end even if it does not.
    """
    candidates = [login for login in logins if login.revoked_at is None]
    # Its cached record goes before the row changes.
    cache.invalidate([login.token_hash for login in candidates], best_effort=best_effort)
    now = db.now()
    won = storage.end_logins([login.id for login in candidates], now, reason)
    # Another worker (a sweep, an admin) ended the others first: only ours go on to delivery.
    storage.reload_logins([login.id for login in candidates if login.id not in won])
    ended = [login for login in candidates if login.id in won]
    events: list[tuple[str, dict[str, Any]]] = []
    for login in ended:
        set_committed_value(login, "revoked_at", now)
        set_committed_value(login, "revoked_reason", reason)
        events.append(
            ("session_revoked", {"user_id": login.user_id, "sid": login.sid, "reason": reason})
        )
    if also_record is not None:
        events.extend(
            (also_record, {"user_id": login.user_id, "sid": login.sid}) for login in logins
        )
    audit.record_many(events)
    # Protocols revoke their tokens and queue their logout messages in this transaction.
    logout.on_sessions_ended(ended, reason, initiator=initiator)
    db.get_session().commit()
    logout.after_sessions_ended(ended)
    return ended


def end_current_login(reason: str = "logout") -> LoginSession | None:
    """End this browser's login session (if any) and forget the cookie; commit."""
    login = current_login()
    if login is not None:
        end_logins([login], reason, also_record="logout")
    logout_user()
    session.clear()
    return login


def get_login_by_sid(sid: str) -> LoginSession | None:
    """Return the login session with this ``sid``, or None."""
    return storage.get_login_by_sid(sid)


def revoke_login(
    login: LoginSession, reason: str, *, initiator: tuple[str, str] | None = None
) -> bool:
    """End one login session everywhere; commit. Return False if it had already ended.

    ``initiator`` (protocol, rp) asked for the end itself: it is sent no back-channel logout.
    """
    return bool(end_logins([login], reason, initiator=initiator))


def revoke_user_sessions(
    user: User, reason: str, *, keep: LoginSession | None = None
) -> list[LoginSession]:
    """End every live session of ``user`` except ``keep``; commit. Return the ended ones."""
    return end_logins(storage.list_unexpired_logins(db.now(), user, keep=keep), reason)


def expire_stale_logins() -> list[LoginSession]:
    """End sessions that expired (idle or absolute) so their participants hear of it; commit."""
    now = db.now()
    idle_cutoff = now - get_settings().session_idle_timeout
    stale = storage.list_stale_logins(now, idle_cutoff, limit=500)
    # An expired session's cached record is refused by its own times (and lives no longer),
    # so the sweep goes on while Redis is down: logout deliveries must not wait for it.
    return end_logins(stale, "expired", best_effort=True)


def purge_ended_logins() -> int:
    """Delete a batch of sessions ended long ago, and of finished deliveries; audit; commit."""
    before = db.now() - db.PURGE_AFTER
    count = storage.purge_logins(before)
    deliveries = storage.purge_logout_deliveries(before)
    purged: dict[str, Any] = {"login_sessions": count, "logout_deliveries": deliveries}
    if count or deliveries:
        audit.record("expired_rows_purged", **{name: n for name, n in purged.items() if n})
    db.get_session().commit()
    return count


def count_live_logins() -> int:
    """Return how many login sessions are live now (every replica's: counted in the database)."""
    now = db.now()
    return storage.count_live_logins(now, now - get_settings().session_idle_timeout)


def list_logins(user: User | None = None) -> list[LoginSession]:
    """Return live login sessions, newest first, optionally of one user."""
    now = db.now()
    return [
        login for login in storage.list_unexpired_logins(now, user) if is_login_active(login, now)
    ]


def list_user_logins(user: User) -> list[tuple[LoginSession, list[SessionParticipant]]]:
    """Return the user's live sessions, newest first, each with the apps that joined it."""
    logins = list_logins(user)
    joined = logout.participants_of(logins)
    return [(login, joined[login.id]) for login in logins]


def revoke_user_login(user: User, sid: str) -> LoginSession:
    """End one live session of ``user`` (at the IdP and every app that joined it); commit.

    Raises:
        NotFoundError: ``user`` has no live session with this ``sid``; another user's
            session is not theirs to end, and is not told apart from a missing one.

    """
    login = storage.get_login_by_sid(sid) if len(sid) <= 64 else None
    if login is None or login.user_id != user.id or not is_login_active(login, db.now()):
        raise NotFoundError("no such session")
    revoke_login(login, reason=REVOKED_BY_USER)
    return login


def page_logins(
    user: User | None = None, *, before: int | None = None, limit: int = 100
) -> list[LoginSession]:
    """Return live login sessions, newest (highest id) first, ids below ``before``."""
    now = db.now()
    idle_cutoff = now - get_settings().session_idle_timeout
    return storage.page_live_logins(now, idle_cutoff, user=user, before=before, limit=limit)


def describe_login(
    login: LoginSession, participants: list[SessionParticipant] | None = None
) -> dict[str, Any]:
    """Return the public description of a session (``idp session list --json``, the admin API).

    ``participants``: the apps that joined it, when the caller fetched them for many sessions.
    """
    return {
        "id": login.sid,
        "user": login.user.email,
        "created": login.created_at.isoformat(),
        "last_seen": login.last_seen_at.isoformat(),
        "expires": effective_expiry(login).isoformat(),
        "ip": login.ip,
        "user_agent": login.user_agent,
        "participants": [
            {
                "protocol": item.protocol,
                "rp": item.rp,
                "joined": item.joined_at.isoformat(),
                # False: front-channel logout only, so told only through a browser.
                "reachable_without_browser": logout.is_reachable_without_browser(item),
            }
            for item in (logout.participants(login) if participants is None else participants)
        ],
    }


def describe_logins(logins: list[LoginSession]) -> list[dict[str, Any]]:
    """Describe many sessions (:func:`describe_login`), their apps fetched in one query."""
    joined = logout.participants_of(logins)
    return [describe_login(login, joined[login.id]) for login in logins]


def is_safe_next(target: str | None) -> bool:
    """Return whether ``target`` is a path on this IdP (no scheme, host or ``//`` trick)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    return all(ord(char) > 31 and char != "\\" for char in target)


def redirect_to_login(
    next_url: str | None = None, *, force: bool = False, login_hint: str | None = None
) -> Response:
    """Send the browser to the login form, coming back to ``next_url`` (a local path).

    ``force`` asks for the password even when a session exists (``prompt=login``,
    ``max_age``); ``login_hint`` pre-fills the username.
    """
    from flask import redirect

    params: dict[str, str] = {}
    if is_safe_next(next_url):
        params["next"] = next_url or ""
    if force:
        params["force"] = "1"
    if login_hint and len(login_hint) <= 320:
        params["login_hint"] = login_hint
    query = f"?{urlencode(params)}" if params else ""
    return redirect(url_for("sessions.login") + query)


def reauthenticate(login: LoginSession, *, amr: list[str]) -> None:
    """Record a fresh authentication in the same session (same ``sid``); commit."""
    now = db.now()
    login.auth_time = now
    login.last_seen_at = now
    login.amr = amr
    login.acr = acr_of(amr)
    cache.invalidate([login.token_hash])
    audit.record(
        "login_success", user_id=login.user_id, sid=login.sid, amr=amr, reauthentication=True
    )
    db.get_session().commit()


def step_up(login: LoginSession, *, amr: list[str]) -> None:
    """Add the methods ``amr`` of a further factor to the session (same ``sid``); commit.

    ``auth_time`` stays: the password was not asked again.
    """
    login.amr = list(dict.fromkeys([*login.amr, *amr]))
    login.acr = acr_of(login.amr)
    login.last_seen_at = db.now()
    cache.invalidate([login.token_hash])
    audit.record("login_step_up", user_id=login.user_id, sid=login.sid, amr=login.amr)
    db.get_session().commit()
