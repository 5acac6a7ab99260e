"""The second step of a login: who typed a right password and still owes a second factor.

The state lives in the browser's signed session cookie for ``PENDING_TTL`` and names the user,
where to go next and why it is asked: ``login`` (after the password), ``step_up`` (an app asked
for more than the session has: the password is not asked again) or ``enrol`` (the policy wants
a factor the user has not set up). No login session exists until a factor completes it, so no
app hears of the user before that.

Any factor completes it the same way (``views.py`` does it for TOTP and recovery codes)::

    pending = pending_second_factor()        # None: expired, spent or never started
    if pending is None: ...                  # back to /login
    if <the factor checks out for pending.user>:
        return redirect(complete_second_factor(["hwk", "mfa"]))
    record_second_factor_failure(pending)    # counts toward the account's lockout
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Final

from flask import redirect
from flask import session
from flask import url_for
from werkzeug.wrappers import Response

from idp import audit
from idp import db
from idp import limits
from idp import replay
from idp.errors import NotFoundError
from idp.models.login import LoginSession
from idp.models.user import User
from idp.sessions import service as sessions
from idp.users import service as users

PENDING_TTL: Final = timedelta(minutes=5)
PURPOSES: Final = ("login", "step_up", "enrol")
_KEY: Final = "idp.mfa.pending"


@dataclass(frozen=True)
class PendingSecondFactor:
    """A password-checked user (or a live session wanting more) waiting for a second factor."""

    user: User
    purpose: str
    next_url: str | None
    started_at: datetime
    nonce: str
    sid: str | None = None


def begin_second_factor(
    user: User, *, next_url: str | None, purpose: str = "login", sid: str | None = None
) -> None:
    """Remember in this browser that ``user`` owes a second factor (for ``PENDING_TTL``)."""
    assert purpose in PURPOSES  # noqa: S101 (a programming error, never user input)
    session[_KEY] = {
        "user": user.id,
        "purpose": purpose,
        "next": next_url if sessions.is_safe_next(next_url) else None,
        "at": db.now().isoformat(),
        "nonce": secrets.token_urlsafe(16),
        "sid": sid,
    }


def ask_step_up(login: LoginSession, *, next_url: str) -> Response:
    """Send this session's user to give a second factor (not the password), then to ``next_url``.

    An app asked for more than the session has (OIDC ``acr_values``, SAML
    ``RequestedAuthnContext``); the session's ``amr`` grows once the factor checks out.
    """
    begin_second_factor(login.user, next_url=next_url, purpose="step_up", sid=login.sid)
    return redirect(url_for("mfa.otp"), 303)


def pending_second_factor() -> PendingSecondFactor | None:
    """Return this browser's pending second step, or None (absent, expired, or stale)."""
    data = session.get(_KEY)
    if not isinstance(data, dict):
        return None
    try:
        started = datetime.fromisoformat(str(data["at"]))
        user_id = int(data["user"])
        purpose = str(data["purpose"])
        nonce = str(data["nonce"])
        next_url = data.get("next")
        sid = data.get("sid")
    except (KeyError, TypeError, ValueError):
        return None
    now = db.now()
    if started.tzinfo is None or not started <= now < started + PENDING_TTL:
        return None
    try:
        user = users.require_user(user_id)
    except NotFoundError:
        return None
    if user is None or user.is_disabled or purpose not in PURPOSES:
        return None
    if purpose == "step_up":
        # A step-up belongs to the session it was asked in: not to one started since.
        login = sessions.current_login()
        if login is None or login.sid != sid or login.user_id != user.id:
            return None
    return PendingSecondFactor(
        user=user,
        purpose=purpose,
        next_url=next_url if isinstance(next_url, str) else None,
        started_at=started,
        nonce=nonce,
        sid=sid if isinstance(sid, str) else None,
    )


def cancel_second_factor() -> None:
    """Forget this browser's pending second step."""
    session.pop(_KEY, None)


def record_second_factor_failure(pending: PendingSecondFactor) -> None:
    """Count a failed second factor toward the account's lockout (as a wrong password)."""
    audit.record("login_failure", user_id=pending.user.id, reason="bad_second_factor")
    db.get_session().commit()
    limits.record_failure(
        limits.account_key(pending.user.email), "account_locked", user_id=pending.user.id
    )


def complete_second_factor(amr: list[str]) -> str:
    """Finish the pending step with a checked factor: start (or upgrade) the login session.

    ``amr`` are the methods of the factor (RFC 8176: ``["otp", "mfa"]``, ``["hwk", "mfa"]``);
    ``pwd`` is added for a login after the password. Returns the URL to go on to.

    Raises:
        LookupError: nothing is pending (or it was completed already in another tab).

    """
    pending = pending_second_factor()
    if pending is None or not replay.remember_once(
        f"mfa:pending:{pending.nonce}", pending.started_at + PENDING_TTL
    ):
        cancel_second_factor()
        raise LookupError("no second factor is pending")
    cancel_second_factor()
    target = pending.next_url or url_for("sessions.home")
    current = sessions.current_login()
    if pending.purpose == "step_up" and current is not None:
        sessions.step_up(current, amr=amr)
        return target
    full = list(dict.fromkeys(["pwd", *amr]))
    if current is not None and current.user_id == pending.user.id:
        sessions.reauthenticate(current, amr=full)
    else:
        if current is not None:
            sessions.end_current_login("switched_user")
        sessions.start_login(pending.user, amr=full)
    return target
