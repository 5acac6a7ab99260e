"""The user's own pages: /account/ (profile), security (password), sessions and apps.

HTTP only: every page needs a login, every form a CSRF token, and each change is one call
into the owning package's service.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from idp import csrf
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.oidc import consents
from idp.saml import registration as saml_registration
from idp.sessions import service as sessions
from idp.sessions.devices import describe_user_agent
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


@bp.after_request
def _private_page(response: Response) -> Response:
    # Buttons that end sessions must not be clickjacked (framed under a decoy), and a page
    # listing one's addresses and devices must not stay in a shared cache or the history.
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    return response


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


@bp.route("/security", methods=["GET", "POST"])
def security() -> ResponseReturnValue:
    login = _login()
    if request.method == "GET":
        return render_template("account/security.html")
    new_password = request.form.get("new_password", "")
    try:
        if new_password != request.form.get("confirm_password", ""):
            raise InvalidInputError("the new password and its confirmation differ")
        users.change_password(
            login.user,
            request.form.get("current_password", ""),
            new_password,
            keep_login=login,
        )
    except InvalidInputError as error:
        return render_template("account/security.html", error=_sentence(error)), 400
    return _back(
        "account.security", "Your password is changed. Your other sessions were signed out."
    )


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
        }
        for other, joined in listed
    ]
    rows.sort(key=lambda row: not row["is_current"])  # this device first, then newest first
    return render_template("account/sessions.html", rows=rows)


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
