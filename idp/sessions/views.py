"""Login and logout pages: /login (username, password; then ``mfa/`` asks the ``otp``), /logout."""

from __future__ import annotations

from flask import Blueprint
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from idp import csrf
from idp import headers
from idp.mfa import pending as second_step
from idp.mfa import service as mfa
from idp.sessions import logout as session_logout
from idp.sessions import requesters
from idp.sessions import service

bp = Blueprint("sessions", __name__)
# Home shows who is signed in, the login page the address typed: no cache, no history copy.
bp.after_request(headers.no_store)

# One message for every failure, so the page never tells whether the account exists. The
# field is labelled "Email": the message uses the same word (the form field stays `username`).
LOGIN_FAILED = "Invalid email or password."
MAX_FIELD_LENGTH = 1024
# The longest e-mail address (RFC 5321 §4.5.3.1: 64 + 1 + 255) shown back in the form.
MAX_EMAIL_LENGTH = 320


def _next_target() -> str | None:
    target = request.values.get("next")
    return target if service.is_safe_next(target) else None


def _login_page(next_url: str | None, force: bool, email: str, error: str | None = None) -> str:
    return render_template(
        "sessions/login.html",
        next_url=next_url,
        error=error,
        force=force,
        email=email[:MAX_EMAIL_LENGTH],
        requester=requesters.get_requester_name(next_url),
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    next_url = _next_target()
    force = request.values.get("force") == "1"
    current = service.current_login()
    if request.method == "GET":
        if current is not None and next_url and not force:
            return redirect(next_url)
        return _login_page(next_url, force, request.args.get("login_hint", ""))
    csrf.validate()
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    user = None
    if username and password and max(len(username), len(password)) <= MAX_FIELD_LENGTH:
        user = service.authenticate(username, password)
    if user is None:
        # The address typed is shown back whether or not an account has it: nothing is told.
        return _login_page(next_url, force, username, error=LOGIN_FAILED), 401
    # A user with a second factor (or required to have one) is not logged in yet: no session
    # exists, and no app hears of them, until the second step completes.
    if mfa.has_second_factor(user):
        second_step.begin_second_factor(user, next_url=next_url)
        return redirect(url_for("mfa.otp"), 303)
    if mfa.is_mfa_required(user):
        second_step.begin_second_factor(user, next_url=next_url, purpose="enrol")
        return redirect(url_for("mfa.setup"), 303)
    second_step.cancel_second_factor()
    if current is not None and current.user_id == user.id:
        service.reauthenticate(current, amr=["pwd"])
    else:
        if current is not None:
            service.end_current_login("switched_user")
        service.start_login(user, amr=["pwd"])
    return redirect(next_url or url_for("sessions.home"))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    if request.method == "GET":
        login = service.current_login()
        if login is None:
            return render_template("sessions/logged_out.html")
        return render_template("sessions/logout.html", login=login)
    csrf.validate()
    ended = service.end_current_login("logout")
    # Front-Channel Logout 1.0 §2: the OP's logged-out page renders an iframe per RP.
    urls = session_logout.front_channel_urls(ended) if ended is not None else []
    return render_template("sessions/logged_out.html", frontchannel_urls=urls)


@bp.route("/")
def home() -> ResponseReturnValue:
    login = service.current_login()
    if login is None:
        return service.redirect_to_login(url_for("sessions.home"))
    return render_template("sessions/home.html", login=login)
