"""Notes' and Wiki's pages: sign in with OpenID Connect, show what the IdP said, log out.

Each page is a few lines of HTTP; the protocol is in ``oidc.py``, the look in ``templates/``.
"""

from __future__ import annotations

from flask import Blueprint
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue

from relying_party_demo.common import oidc
from relying_party_demo.common.backchannel import KeysUnavailableError
from relying_party_demo.common.backchannel import LogoutTokenError
from relying_party_demo.common.layout import log_out_here
from relying_party_demo.common.layout import render_error
from relying_party_demo.common.layout import start_user_session

bp = Blueprint("rp", __name__)
NO_STORE = {"Cache-Control": "no-store"}
# Answers to prompt=none that only mean "nobody is signed in at the IdP" (OIDC Core §3.1.2.6).
SILENT_FAILURES = {
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
}


@bp.get("/")
def home() -> ResponseReturnValue:
    rp = oidc.get_rp()
    if request.args.get("state") and "user" not in session:
        return after_logout()
    if session.get("user") is None and rp.silent_login and not session.get("silent_checked"):
        return redirect(url_for(".login", silent="1"))
    return render_template("oidc/home.html", protocol=rp.protocol, rp=rp)


def after_logout() -> ResponseReturnValue:
    if oidc.is_logout_response():
        session["silent_checked"] = True
        flash("You are signed out of the identity provider and of every app.")
    return redirect(url_for(".home"))


@bp.get("/login")
def login() -> ResponseReturnValue:
    silent = request.args.get("silent") == "1"
    session["silent_checked"] = True
    session["silent_pending"] = silent
    extra = {"prompt": "none"} if silent else {}
    try:
        response: ResponseReturnValue = oidc.get_idp().authorize_redirect(
            oidc.get_rp().base_url + "/callback", **extra
        )
    except oidc.UNREACHABLE:
        return unreachable()
    return response


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    silent = session.pop("silent_pending", False)
    error = request.args.get("error")
    if error:
        if silent and error in SILENT_FAILURES:
            return redirect(url_for(".home"))
        description = request.args.get("error_description") or error
        return render_error(400, "Sign-in refused", f"The identity provider said: {description}")
    try:
        start_user_session(oidc.complete_login())
    except oidc.SignInError as refused:
        return render_error(400, refused.heading, str(refused))
    except oidc.UNREACHABLE:
        return unreachable()
    return redirect(url_for(".home"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = log_out_here()
    response = oidc.logout_redirect(user)
    if response is None:
        title = current_app.config["APP_TITLE"]
        flash(f"Signed out of {title} only: the identity provider offers no single logout.")
        return redirect(url_for(".home"))
    return response


@bp.post("/backchannel-logout")
def backchannel_logout() -> ResponseReturnValue:
    token = request.form.get("logout_token")
    if not token:
        return refuse("logout_token is missing")
    try:
        ended = oidc.end_sessions(token)
    except LogoutTokenError as error:
        return refuse(str(error))
    except (KeysUnavailableError, KeyError, *oidc.UNREACHABLE):
        current_app.logger.exception("cannot check a logout token now")
        return {"error": "temporarily_unavailable"}, 503, NO_STORE
    current_app.logger.info("back-channel logout ended %d session(s)", ended)
    return "", 200, NO_STORE


def refuse(description: str) -> ResponseReturnValue:
    # §2.8: "If the logout request fails, the RP SHOULD respond with 400 Bad Request".
    return {"error": "invalid_request", "error_description": description}, 400, NO_STORE


def unreachable() -> ResponseReturnValue:
    current_app.logger.exception("the identity provider did not answer")
    issuer = current_app.config["IDP_ISSUER"]
    return render_error(
        503, "Identity provider unreachable", f"{issuer} did not answer; is it running?"
    )
