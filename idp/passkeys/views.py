"""Passkey pages and endpoints: enrol, rename and remove on /account/security; passwordless login.

HTTP only. Every POST carries the page's CSRF token (the script sends it with the options
request too); adding or removing a passkey needs a recent login.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Flask
from flask import Response
from flask import abort
from flask import flash
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter

from idp import csrf
from idp import headers
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.mfa import pending as second_step
from idp.mfa import service as mfa
from idp.models.login import LoginSession
from idp.passkeys import service as passkeys
from idp.sessions import requesters
from idp.sessions import service as sessions

bp = Blueprint("passkeys", __name__)

# One message for every failed passkey sign-in: which check failed is for the audit log.
LOGIN_FAILED = "Sign-in with a passkey failed. Try again or use your password."
REGISTRATION_FAILED = "The passkey could not be added. Please try again."
CONFIRM_FIRST = "Confirm it is you (sign in again), then repeat the action."
SECURITY_PAGE = "account.security"
# Each options request stores a challenge: one client IP may not start more than this.
OPTIONS_RATE = "60 per minute"
TOO_MANY_CEREMONIES = "Too many passkey attempts from your network. Try again later."


def init_app(app: Flask) -> None:
    """Register the blueprint, its per-IP limit and the account page section's Jinja helper."""
    app.register_blueprint(bp)
    app.jinja_env.globals["passkey_section"] = _section_context
    app.jinja_env.globals["passkey_count"] = passkeys.count_for_user
    # A passkey is a second factor: it sends a password login to the second step, and an
    # admin's factor reset (``idp user totp reset``) removes it with the others.
    mfa.register_factor(
        app,
        mfa.Factor(
            name="passkey",
            has=lambda user: passkeys.count_for_user(user.id) > 0,
            reset=lambda user: passkeys.delete_all_for_user(user.id),
        ),
    )
    limiter: Limiter = app.extensions["idp.limiter"]
    shared = limiter.shared_limit(
        OPTIONS_RATE, scope="passkey_options", error_message=TOO_MANY_CEREMONIES
    )
    for endpoint in (
        "passkeys.login_options",
        "passkeys.registration_options",
        "passkeys.second_factor_options",
    ):
        app.view_functions[endpoint] = shared(app.view_functions[endpoint])  # type: ignore[assignment]


def _section_context() -> dict[str, Any]:
    login = sessions.current_login()
    if login is None:
        return {"passkeys": [], "recent": False}
    return {
        "passkeys": passkeys.list_passkeys(login.user),
        "recent": passkeys.is_recent_login(login),
    }


def _require_login() -> LoginSession:
    login = sessions.current_login()
    if login is None:
        abort(401, description="Sign in first.")
    return login


def options_response(body: str) -> Response:
    """Return a ceremony's options (JSON from ``service.begin_*``), kept out of every cache."""
    response = Response(body, mimetype="application/json")
    headers.no_store(response)  # a challenge is for this browser alone
    return response


def _confirm_first(login: LoginSession) -> ResponseReturnValue:
    flash(CONFIRM_FIRST)
    return sessions.redirect_to_login(
        url_for(SECURITY_PAGE), force=True, login_hint=login.user.email
    )


# -- /account/security -----------------------------------------------------------------------


@bp.post("/account/security/passkeys/options")
def registration_options() -> ResponseReturnValue:
    login = _require_login()
    csrf.validate()
    if not passkeys.is_recent_login(login):
        location = url_for(
            "sessions.login", next=url_for(SECURITY_PAGE), force="1", login_hint=login.user.email
        )
        body = jsonify(error="login_required", message=CONFIRM_FIRST, location=location)
        return headers.no_store(body), 403
    return options_response(passkeys.begin_registration(login.user))


@bp.post("/account/security/passkeys")
def manage() -> ResponseReturnValue:
    login = _require_login()
    csrf.validate()
    action = request.form.get("action")
    if action == "add":
        if not passkeys.is_recent_login(login):
            return _confirm_first(login)
        try:
            passkey = passkeys.finish_registration(
                login.user, request.form.get("credential", ""), request.form.get("name", "")
            )
        except InvalidInputError as error:
            flash(f"{str(error)[:1].upper()}{str(error)[1:]}.")
            return redirect(url_for(SECURITY_PAGE), 303)
        except passkeys.PasskeyError:
            flash(REGISTRATION_FAILED)
            return redirect(url_for(SECURITY_PAGE), 303)
        flash(f"Passkey “{passkey.name}” added. You can sign in with it.")
        return redirect(url_for(SECURITY_PAGE), 303)
    passkey_id = request.form.get("id", "")
    if action not in ("rename", "remove") or not passkey_id.isdigit() or len(passkey_id) > 9:
        abort(400, description="Choose a passkey and what to do with it.")
    try:
        if action == "remove":
            if not passkeys.is_recent_login(login):
                return _confirm_first(login)
            removed = passkeys.remove_passkey(login.user, int(passkey_id))
            flash(f"Passkey “{removed.name}” removed.")
        else:
            passkeys.rename_passkey(login.user, int(passkey_id), request.form.get("name", ""))
            flash("Passkey renamed.")
    except NotFoundError:
        abort(404, description="You have no such passkey.")
    except InvalidInputError as error:
        flash(f"{str(error)[:1].upper()}{str(error)[1:]}.")
    return redirect(url_for(SECURITY_PAGE), 303)


# -- passwordless login ----------------------------------------------------------------------


def _next_target() -> str | None:
    target = request.values.get("next")
    return target if sessions.is_safe_next(target) else None


@bp.post("/login/passkey/options")
def login_options() -> ResponseReturnValue:
    csrf.validate()
    return options_response(passkeys.begin_login())


@bp.post("/login/passkey/verify")
def login_verify() -> ResponseReturnValue:
    csrf.validate()
    next_url = _next_target()
    force = request.form.get("force") == "1"
    try:
        user, amr = passkeys.finish_login(request.form.get("credential", ""))
    except passkeys.PasskeyError:
        page = render_template(
            "sessions/login.html",
            next_url=next_url,
            error=LOGIN_FAILED,
            force=force,
            email="",
            requester=requesters.get_requester_name(next_url),
        )
        return page, 401
    current = sessions.current_login()
    if current is not None and current.user_id == user.id:
        sessions.reauthenticate(current, amr=amr)
    else:
        if current is not None:
            sessions.end_current_login("switched_user")
        sessions.start_login(user, amr=amr)
    return redirect(next_url or url_for("sessions.home"))


# -- the second step of a password login -----------------------------------------------------

SECOND_FACTOR_FAILED = "The passkey was not accepted. Try again or use a code."


@bp.post("/login/otp/passkey/options")
def second_factor_options() -> ResponseReturnValue:
    csrf.validate()
    pending = second_step.pending_second_factor()
    if pending is None or pending.purpose == "enrol":
        location = url_for("sessions.login")
        body = jsonify(error="login_required", message="Please sign in again.", location=location)
        return headers.no_store(body), 403
    return options_response(passkeys.begin_authentication(pending.user.id))


@bp.post("/login/otp/passkey")
def second_factor_verify() -> ResponseReturnValue:
    csrf.validate()
    pending = second_step.pending_second_factor()
    if pending is None or pending.purpose == "enrol":
        flash("That took too long. Please sign in again.")
        return redirect(url_for("sessions.login"), 303)
    try:
        amr = passkeys.verify_assertion_for_user(
            pending.user.id, request.form.get("credential", "")
        )
    except passkeys.PasskeyError:
        # 401: the per-IP limit counts it as it counts a wrong password or code.
        return render_template("mfa/otp.html", pending=pending, error=SECOND_FACTOR_FAILED), 401
    try:
        return redirect(second_step.complete_second_factor(amr), 303)
    except LookupError:
        flash("That took too long. Please sign in again.")
        return redirect(url_for("sessions.login"), 303)
