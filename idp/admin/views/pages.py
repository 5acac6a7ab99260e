"""The admin console's pages: dashboard, users, apps, sessions, keys and the audit log."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from flask import abort
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from idp import audit
from idp import db
from idp.admin import charts
from idp.admin.views.base import PAGE_SIZE
from idp.admin.views.base import back
from idp.admin.views.base import bp
from idp.admin.views.base import current_admin_login
from idp.admin.views.base import int_arg
from idp.admin.views.base import page_of
from idp.admin.views.base import require_recent_login
from idp.attributes import BY_CLAIM
from idp.errors import NotFoundError
from idp.inputs import is_clean
from idp.keys import service as keys
from idp.mfa import service as mfa
from idp.oidc import clients
from idp.passkeys import service as passkeys
from idp.saml import registration as sps
from idp.sessions import service as sessions
from idp.settings import get_settings
from idp.users import service as users

CHART_HOURS = 24
COUNT_BATCH = 1000


# -- dashboard -------------------------------------------------------------------------------


def _hourly_counts(event: str, start: datetime) -> list[int]:
    counts = [0] * CHART_HOURS
    before = None
    while True:
        rows = audit.list_events(event=event, since=start, before=before, limit=COUNT_BATCH)
        for row in rows:
            at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
            hour = int((at - start) / timedelta(hours=1))
            if 0 <= hour < CHART_HOURS:
                counts[hour] += 1
        if len(rows) < COUNT_BATCH:
            return counts
        before = rows[-1].id


@bp.route("/")
def dashboard() -> ResponseReturnValue:
    now = db.now()
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=CHART_HOURS - 1)
    logins = _hourly_counts("login_success", start)
    failures = _hourly_counts("login_failure", start)
    chart = charts.build_hourly_bars(
        [
            charts.Series("sign-ins", "bar-ok", logins),
            charts.Series("failed sign-ins", "bar-bad", failures),
        ],
        start=start,
    )
    return render_template(
        "admin/dashboard.html",
        active_sessions=len(sessions.list_logins()),
        logins=sum(logins),
        failures=sum(failures),
        chart=Markup(chart),  # noqa: S704 (built by charts.py, every value escaped there)
        clients=clients.list_clients(),
        sps=sps.list_service_providers(),
    )


# -- users -----------------------------------------------------------------------------------


@bp.route("/users", methods=["GET", "POST"])
def users_page() -> ResponseReturnValue:
    if request.method == "POST":
        try:
            user = users.require_user(int(request.form.get("user_id", "0") or 0))
        except (NotFoundError, ValueError):
            abort(404, description="There is no such user.")
        action = request.form.get("action")
        if action in ("disable", "enable"):
            if user.id == current_admin_login().user_id:
                abort(400, description="You cannot disable your own account here.")
            users.set_disabled(user, action == "disable")
            return back(f"{user.email} is {action}d.")
        if action == "reset_factors":
            # It weakens the account: a stolen admin cookie alone must not do it.
            again = require_recent_login()
            if again is not None:
                return again
            removed = mfa.reset_factors(user)
            return back(f"Removed {removed} second factor(s) of {user.email}.")
        if action == "delete":
            if user.id == current_admin_login().user_id:
                abort(400, description="You cannot delete your own account here.")
            again = require_recent_login()
            if again is not None:
                return again
            email = user.email
            users.delete_user(user)
            return back(f"{email} is deleted; their sessions ended everywhere.")
        if action == "unlock":
            was_locked = users.unlock_user(user)
            return back(f"{user.email} {'is unlocked' if was_locked else 'was not locked'}.")
        abort(400, description="Choose an action.")
    search = request.args.get("q", "").strip()[:200] or None
    rows = users.list_users(search=search, after=int_arg("after"), limit=PAGE_SIZE + 1)
    page, after = page_of(rows, "id")
    counts = passkeys.count_by_user([user.id for user in page])
    return render_template(
        "admin/users.html",
        users=page,
        locks=users.get_lockouts(page),
        q=search or "",
        after=after,
        passkey_counts=counts,
    )


# -- apps ------------------------------------------------------------------------------------


@bp.route("/apps")
def apps() -> ResponseReturnValue:
    issuer = get_settings().issuer
    released = {
        sp.id: [
            BY_CLAIM[claim]
            for claim in (sp.attributes if sp.attributes is not None else BY_CLAIM)
            if claim in BY_CLAIM and BY_CLAIM[claim].saml_name
        ]
        for sp in sps.list_service_providers()
    }
    return render_template(
        "admin/apps.html",
        discovery_url=f"{issuer}/.well-known/openid-configuration",
        metadata_url=f"{issuer}/saml/metadata",
        clients=clients.list_clients(),
        sps=sps.list_service_providers(),
        released=released,
    )


# -- sessions --------------------------------------------------------------------------------


@bp.route("/sessions", methods=["GET", "POST"])
def sessions_page() -> ResponseReturnValue:
    email = request.args.get("user", "").strip()[:320] or None
    try:
        user = users.require_user_by_email(email) if email else None
    except NotFoundError:
        abort(404, description="There is no such user.")
    if request.method == "POST":
        action = request.form.get("action")
        if action == "revoke":
            sid = request.form.get("sid", "")
            login = sessions.get_login_by_sid(sid) if len(sid) <= 64 and is_clean(sid) else None
            if login is None:
                abort(404, description="There is no such session.")
            sessions.revoke_login(login, reason="admin_revoked")
            return back(f"The session of {login.user.email} ended everywhere.")
        if action == "revoke_all" and user is not None:
            again = require_recent_login()
            if again is not None:
                return again
            ended = sessions.revoke_user_sessions(user, reason="admin_revoked")
            return back(f"{len(ended)} session(s) of {user.email} ended everywhere.")
        abort(400, description="Choose a session to end.")
    rows = sessions.page_logins(user, before=int_arg("before"), limit=PAGE_SIZE + 1)
    page, before = page_of(rows, "id")
    return render_template(
        "admin/sessions.html",
        user=user,
        items=[sessions.describe_login(login) for login in page],
        before=before,
    )


# -- keys ------------------------------------------------------------------------------------


@bp.route("/keys", methods=["GET", "POST"])
def keys_page() -> ResponseReturnValue:
    if request.method == "POST":
        again = require_recent_login()
        if again is not None:
            return again
        created = keys.rotate_keys()
        return back(f"{len(created)} new key(s) published; they sign after the JWKS max age.")
    return render_template("admin/keys.html", keys=keys.list_keys())


# -- audit log -------------------------------------------------------------------------------


def _parse_since(value: str) -> datetime | None:
    """Read a ``datetime-local`` value (or an RFC 3339 one); naive times are UTC."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@bp.route("/audit")
def audit_page() -> ResponseReturnValue:
    form = {name: request.args.get(name, "").strip()[:320] for name in ("user", "type", "since")}
    filters: dict[str, Any] = {}
    error = None
    if form["user"]:
        found = users.get_user_by_email(form["user"]) if "@" in form["user"] else None
        if found is not None:
            filters["user_id"] = found.id
        elif form["user"].isdigit() and len(form["user"]) < 10:
            filters["user_id"] = int(form["user"])
        else:
            error = "User: no user has this e-mail address."
    if form["type"]:
        if form["type"].replace("_", "").isalpha() and len(form["type"]) <= 64:
            filters["event"] = form["type"]
        else:
            error = "Type: an event type is lower-case letters and underscores."
    if form["since"]:
        filters["since"] = _parse_since(form["since"])
        if filters["since"] is None:
            error = "Since: give a date and time, like 2026-01-31T09:00."
    if error is not None:
        return render_template("admin/audit.html", form=form, events=[], error=error), 400
    rows = audit.list_events(**filters, before=int_arg("before"), limit=PAGE_SIZE + 1)
    page, before = page_of(rows, "id")
    query = {name: value for name, value in form.items() if value}
    return render_template("admin/audit.html", form=form, events=page, before=before, query=query)
