"""Second-factor pages: the ``otp`` login step, set-up required by policy, /account/security.

The TOTP section of /account/security: set up, confirm, new recovery codes, turn off. HTTP
only: every form carries a CSRF token; each action is one call into ``service.py`` or
``pending.py``.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from idp import csrf
from idp import headers
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.mfa import pending as second_step
from idp.mfa import service
from idp.sessions import service as sessions

bp = Blueprint("mfa", __name__)

# One message for every failure of the code step: wrong, replayed, used, or a locked account.
CODE_FAILED: Final = "Invalid code."
EXPIRED: Final = "That took too long. Please sign in again."
MAX_CODE_LENGTH: Final = 64

# Pages with a secret, a QR code or recovery codes stay out of every cache and the history.
bp.after_request(headers.no_store)


def _sentence(error: Exception) -> str:
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}."


def _code() -> str:
    return request.form.get("otp", "")[:MAX_CODE_LENGTH]


def _back_to_login(message: str | None = EXPIRED) -> ResponseReturnValue:
    if message:
        flash(message)
    return redirect(url_for("sessions.login"), 303)


@bp.route("/login/otp", methods=["GET", "POST"])
def otp() -> ResponseReturnValue:
    pending = second_step.pending_second_factor()
    if request.method == "POST":
        csrf.validate()
    if pending is None or pending.purpose == "enrol":
        return _back_to_login(EXPIRED if request.method == "POST" else None)
    # A user whose only factor is a passkey has no code to type: the page offers the passkey.
    takes_code = service.get_totp(pending.user) is not None or bool(
        service.count_recovery_codes(pending.user)
    )
    if request.method == "GET":
        return render_template("mfa/otp.html", pending=pending, takes_code=takes_code)
    if service.verify_code(pending.user, _code()) is not None:
        try:
            return redirect(second_step.complete_second_factor(service.AMR_OTP), 303)
        except LookupError:
            return _back_to_login()
    # 401: the per-IP limit counts it as it counts a wrong password.
    page = render_template(
        "mfa/otp.html", pending=pending, takes_code=takes_code, error=CODE_FAILED
    )
    return page, 401


@bp.route("/login/setup", methods=["GET", "POST"])
def setup() -> ResponseReturnValue:
    """Set up TOTP after the password when the policy requires a factor the user lacks."""
    pending = second_step.pending_second_factor()
    if request.method == "POST":
        csrf.validate()
    if pending is None or pending.purpose != "enrol":
        return _back_to_login(EXPIRED if request.method == "POST" else None)
    user = pending.user
    if request.method == "GET":
        enrolment = service.get_enrolment(user) or service.start_enrolment(user)
        return render_template("mfa/enrol.html", enrolment=enrolment, action=request.path)
    try:
        codes = service.confirm_enrolment(user, _code())
    except InvalidInputError as error:
        enrolment = service.get_enrolment(user) or service.start_enrolment(user)
        page = render_template(
            "mfa/enrol.html", enrolment=enrolment, action=request.path, error=_sentence(error)
        )
        return page, 400
    try:
        target = second_step.complete_second_factor(service.AMR_OTP)
    except LookupError:
        return _back_to_login()
    # Rendered, not redirected: the codes must not survive in a flash or a URL.
    return render_template("mfa/recovery_codes.html", codes=codes, continue_url=target)


@bp.route("/account/security/totp", methods=["POST"])
def account_totp() -> ResponseReturnValue:
    """Set up, confirm, renew the recovery codes of, or turn off the user's TOTP."""
    login = sessions.current_login()
    if login is None:
        return sessions.redirect_to_login(url_for("account.security"))
    csrf.validate()
    user = login.user
    action = request.form.get("action")
    action_url = url_for("mfa.account_totp")
    try:
        if action == "start":
            enrolment = service.start_enrolment(user)
            return render_template("mfa/enrol.html", enrolment=enrolment, action=action_url)
        if action == "confirm":
            codes = service.confirm_enrolment(user, _code())
            # This browser proved the factor just now: its session counts as multi-factor.
            sessions.step_up(login, amr=service.AMR_OTP)
            return render_template(
                "mfa/recovery_codes.html", codes=codes, continue_url=url_for("account.security")
            )
        if action in ("disable", "recovery_codes"):
            if service.get_totp(user) is None:
                raise InvalidInputError("TOTP is not set up")
            present = service.confirm_presence(
                user, code=_code(), password=request.form.get("current_password", "")[:1024]
            )
            if not present:
                raise InvalidInputError("give a current code from your app, or your password")
            if action == "disable":
                service.disable_totp(user)
                flash("Two-step sign-in is off. Your recovery codes no longer work.")
                return redirect(url_for("account.security"), 303)
            codes = service.regenerate_recovery_codes(user)
            return render_template(
                "mfa/recovery_codes.html", codes=codes, continue_url=url_for("account.security")
            )
    except (InvalidInputError, ConflictError) as error:
        in_progress = service.get_enrolment(user) if action == "confirm" else None
        if in_progress is not None:
            page = render_template(
                "mfa/enrol.html", enrolment=in_progress, action=action_url, error=_sentence(error)
            )
            return page, 400
        flash(_sentence(error))
        return redirect(url_for("account.security"), 303)
    flash("Choose what to do.")
    return redirect(url_for("account.security"), 303)
