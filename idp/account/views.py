"""The user's own pages: /account/ (profile), security (password, TOTP), sessions, tokens, apps.

HTTP only: every page needs a login, every form a CSRF token, and each change is one call
into the owning package's service.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import date
from datetime import datetime
from datetime import time
from datetime import timedelta
from typing import Any

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from idp import csrf
from idp import db
from idp import headers
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.mfa import service as mfa
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.models.user import User
from idp.oidc import consents
from idp.oidc import tokens as oidc_tokens
from idp.saml import registration as saml_registration
from idp.sessions import service as sessions
from idp.sessions.devices import describe_user_agent
from idp.tokens import monitor
from idp.tokens import service as pats
from idp.tokens import usage
from idp.users import service as users

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.before_request
def _require_login_and_csrf() -> ResponseReturnValue | None:
    if sessions.current_login() is None:
        # A form posted after the session ended comes back to its page, never replayed.
        return sessions.redirect_to_login(request.path)
    if request.method == "POST":
        csrf.validate()
    return None


# A page listing one's addresses and devices must not stay in a shared cache or the history.
bp.after_request(headers.no_store)


def _login() -> LoginSession:
    login = sessions.current_login()
    assert login is not None  # noqa: S101 (the before_request hook saw to it)
    return login


def _sentence(error: InvalidInputError) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}."


def _back(endpoint: str, message: str) -> Response:
    flash(message)
    return redirect(url_for(endpoint), 303)


@bp.route("/", methods=["GET", "POST"])
def profile() -> ResponseReturnValue:
    login = _login()
    if request.method == "GET":
        return render_template("account/profile.html", user=login.user, form={})
    try:
        users.update_user(
            login.user,
            name=request.form.get("name"),
            given_name=request.form.get("given_name"),
            family_name=request.form.get("family_name"),
        )
    except InvalidInputError as error:
        page = render_template(
            "account/profile.html", user=login.user, form=request.form, error=_sentence(error)
        )
        return page, 400
    return _back("account.profile", "Your profile is saved.")


def _security_page(user: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    page = render_template(
        "account/security.html",
        totp=mfa.get_totp(user),
        recovery_codes=mfa.count_recovery_codes(user),
        mfa_required=mfa.is_mfa_required(user),
        **context,
    )
    return page, status


@bp.route("/security", methods=["GET", "POST"])
def security() -> ResponseReturnValue:
    login = _login()
    if request.method == "GET":
        return _security_page(login.user)
    new_password = request.form.get("new_password", "")
    try:
        if new_password != request.form.get("confirm_password", ""):
            raise InvalidInputError("the new password and its confirmation differ")
        users.change_password(
            login.user,
            request.form.get("current_password", ""),
            new_password,
            keep_login=login,
            revoke_tokens=request.form.get("revoke_tokens") == "yes",
        )
    except InvalidInputError as error:
        return _security_page(login.user, 400, error=_sentence(error))
    message = "Your password is changed. Your other sessions were signed out."
    if request.form.get("revoke_tokens") == "yes":
        message += " Your personal access tokens were revoked."
    return _back("account.security", message)


TOKEN_LIFETIMES = (7, 30, 90)  # days offered on /account/tokens, capped by the policy


def _token_expiry(form: Mapping[str, str], now: datetime) -> datetime | None:
    """Return the expiry the create form asks for (None: never).

    Raises:
        InvalidInputError: no valid choice or date.

    """
    choice = form.get("expires", "")
    if choice == "never":
        return None
    if choice == "date":
        try:
            day = date.fromisoformat(form.get("expires_on", ""))
        except ValueError:
            raise InvalidInputError("choose an expiry date") from None
        return datetime.combine(day, time(), UTC)
    if choice.isdigit() and int(choice) in TOKEN_LIFETIMES:
        return now + timedelta(days=int(choice))
    raise InvalidInputError("choose when the token expires")


def _tokens_page(user: User, status: int = 200, **context: Any) -> ResponseReturnValue:
    now = db.now()
    policy = pats.get_policy()
    page = render_template(
        "account/tokens.html",
        tokens=pats.list_tokens(user),
        recent_usage=lambda row: usage.recent_usage(usage.PAT, row.id),
        scopes=pats.allowed_scopes(user, policy),
        enabled=policy.enabled,
        lifetimes=[days for days in TOKEN_LIFETIMES if days <= policy.max_lifetime]
        or [policy.max_lifetime],
        allow_no_expiry=policy.allow_no_expiry,
        max_date=now + timedelta(days=policy.max_lifetime),
        now=now,
        form=context.pop("form", MultiDict()),
        **context,
    )
    return page, status


@bp.route("/notices", methods=["POST"])
def dismiss_notices() -> ResponseReturnValue:
    monitor.dismiss_notices(_login().user)
    return _back("account.profile", "Security notices dismissed.")


@bp.route("/tokens", methods=["GET", "POST"])
def tokens() -> ResponseReturnValue:
    user = _login().user
    if request.method == "GET":
        return _tokens_page(user)
    action = request.form.get("action")
    try:
        if action == "create":
            row, secret = pats.create_token(
                user,
                name=request.form.get("name", ""),
                scopes=request.form.getlist("scope"),
                expires_at=_token_expiry(request.form, db.now()),
            )
            # Rendered, not redirected: the secret must not survive in a flash or a URL.
            return _tokens_page(user, created=row, secret=secret)
        token_id = request.form.get("id", "")
        if action not in ("rename", "revoke") or not token_id.isdigit() or len(token_id) > 9:
            abort(400, description="Choose a token and what to do with it.")
        try:
            row = pats.require_token(int(token_id), user)
        except NotFoundError:
            abort(404, description="You have no such token.")
        if action == "revoke":
            pats.revoke_token(row, reason="user_revoked")
            return _back("account.tokens", f"Token “{row.name}” is revoked.")
        pats.rename_token(row, request.form.get("name", ""))
        return _back("account.tokens", "Token renamed.")
    except InvalidInputError as error:
        return _tokens_page(user, 400, form=request.form, error=_sentence(error))


def _app_names(joined: Iterable[SessionParticipant]) -> dict[tuple[str, str], str]:
    """Return the display name of each app, by (protocol, client_id or entity ID)."""
    rps: dict[str, list[str]] = {"oidc": [], "saml": []}
    for participant in joined:
        rps.setdefault(participant.protocol, []).append(participant.rp)
    names = {("oidc", rp): name for rp, name in consents.get_client_names(rps["oidc"]).items()}
    names.update(
        (("saml", rp), name) for rp, name in saml_registration.get_sp_names(rps["saml"]).items()
    )
    return names


# Each live personal access token's latest usage rows shown on /account/sessions.
PAT_USAGE_ON_SESSIONS = 3


@bp.route("/sessions", methods=["GET", "POST"], endpoint="sessions")
def sessions_page() -> ResponseReturnValue:
    login = _login()
    if request.method == "POST":
        action = request.form.get("action")
        if action == "end":
            try:
                sessions.revoke_user_login(login.user, request.form.get("sid", ""))
            except NotFoundError:
                abort(404, description="You have no such session.")
            return _back("account.sessions", "That device is signed out.")
        if action == "end_others":
            ended = sessions.revoke_user_sessions(login.user, sessions.REVOKED_BY_USER, keep=login)
            return _back("account.sessions", f"Signed out {len(ended)} other session(s).")
        abort(400, description="Choose a session to sign out.")
    listed = sessions.list_user_logins(login.user)
    names = _app_names(item for _, joined in listed for item in joined)
    token_uses = oidc_tokens.recent_usage_of_logins([other.id for other, _ in listed])
    used_by = {item.client_id for uses in token_uses.values() for item in uses}
    used_by |= {item.use.resource for uses in token_uses.values() for item in uses}
    client_names = consents.get_client_names(sorted(used_by))
    rows = [
        {
            "login": other,
            "device": describe_user_agent(other.user_agent),
            "is_current": other.id == login.id,
            "apps": [
                names.get((item.protocol, item.rp), item.rp)
                for item in joined
                if item.logged_out_at is None
            ],
            "token_uses": token_uses.get(other.id, []),
        }
        for other, joined in listed
    ]
    rows.sort(key=lambda row: not row["is_current"])  # this device first, then newest first
    now = db.now()
    live_pats = [
        row
        for row in pats.list_tokens(login.user)
        if row.revoked_at is None and (row.expires_at is None or row.expires_at > now)
    ]
    return render_template(
        "account/sessions.html",
        rows=rows,
        client_names=client_names,
        pats=live_pats,
        pat_usage=lambda row: usage.recent_usage(usage.PAT, row.id)[:PAT_USAGE_ON_SESSIONS],
    )


@bp.route("/apps", methods=["GET", "POST"])
def apps() -> ResponseReturnValue:
    login = _login()
    if request.method == "POST":
        try:
            consents.revoke_consent(login.user, request.form.get("client_id", ""))
        except NotFoundError:
            abort(404, description="You have not allowed such an app.")
        return _back("account.apps", "Access revoked. The app will ask again next time.")
    allowed = consents.list_consents(login.user)
    consented = {("oidc", item.client_id) for item in allowed}
    joined = [item for _, items in sessions.list_user_logins(login.user) for item in items]
    names = _app_names(joined)
    signed_in = {
        (item.protocol, item.rp): names.get((item.protocol, item.rp), item.rp)
        for item in joined
        if (item.protocol, item.rp) not in consented
    }
    return render_template("account/apps.html", allowed=allowed, signed_in=signed_in)
