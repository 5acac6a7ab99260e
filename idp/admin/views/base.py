"""The admin console's blueprint, access rule and helpers (pages in ``pages`` and ``tokens``).

The console under /admin/: server-rendered pages for admin users; HTTP only.

Every page needs an admin's login and every form a CSRF token; each change is one call into
the owning package's service (as the admin API makes), audited with the acting admin.
Revoking all of a user's sessions, rotating keys, resetting a user's second factors and
deleting a user need a recent login.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from idp import audit
from idp import csrf
from idp import db
from idp import headers
from idp.models.login import LoginSession
from idp.sessions import service as sessions

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Sensitive actions need a password typed this recently (the login session's auth_time).
RECENT_LOGIN = timedelta(minutes=10)
PAGE_SIZE = 50


@bp.before_request
def _require_admin_and_csrf() -> ResponseReturnValue | None:
    login = sessions.current_login()
    if login is None:
        return sessions.redirect_to_login(request.full_path.rstrip("?"))
    if not login.user.is_admin:
        abort(403, description="This console is for administrators.")
    audit.set_actor(user_id=login.user_id)
    if request.method == "POST":
        csrf.validate()
    return None


bp.after_request(headers.no_store)  # the listings stay out of shared caches and the history


def current_admin_login() -> LoginSession:
    login = sessions.current_login()
    assert login is not None  # noqa: S101 (the before_request hook saw to it)
    return login


def here() -> str:
    return request.full_path.rstrip("?")


def back(message: str) -> Response:
    flash(message)
    return redirect(here(), 303)


def require_recent_login() -> Response | None:
    """Send the admin to type the password again unless they did within RECENT_LOGIN.

    The action is not replayed after the password: the admin comes back to the page and
    confirms it again, knowingly.
    """
    login = current_admin_login()
    if db.now() - login.auth_time <= RECENT_LOGIN:
        return None
    flash("Confirm with your password, then repeat the action.")
    return sessions.redirect_to_login(here(), force=True, login_hint=login.user.email)


def int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


def page_of(rows: list[Any], key: str) -> tuple[list[Any], int | None]:
    """Split a fetch of PAGE_SIZE + 1 rows into the page and the next page's key."""
    if len(rows) <= PAGE_SIZE:
        return rows, None
    return rows[:PAGE_SIZE], int(getattr(rows[PAGE_SIZE - 1], key))
