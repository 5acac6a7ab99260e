"""Payroll's pages: sign in with SAML 2.0, show the assertion, single logout both ways.

Each page is a few lines of HTTP; the python3-saml glue is in ``saml.py``, the look in templates.
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
from onelogin.saml2.errors import OneLogin_Saml2_Error

from relying_party_demo.common.layout import end_user_session
from relying_party_demo.common.layout import get_store
from relying_party_demo.common.layout import is_enabled
from relying_party_demo.common.layout import log_out_here
from relying_party_demo.common.layout import render_error
from relying_party_demo.common.layout import start_user_session
from relying_party_demo.payroll import saml

# "rp", as in every demo app, for the shared templates' url_for("rp.home").
bp = Blueprint("rp", __name__, template_folder="templates")
PROTOCOL = "SAML 2.0 (python3-saml)"
METADATA_TYPE = "application/samlmetadata+xml"


@bp.get("/saml/metadata")
def metadata() -> ResponseReturnValue:
    xml = saml.sp_metadata(current_app.extensions["payroll.sp_settings"])
    return xml, 200, {"Content-Type": METADATA_TYPE}


@bp.get("/")
def home() -> ResponseReturnValue:
    passive_login = is_enabled(current_app.config["PAYROLL_PASSIVE_LOGIN"])
    if session.get("user") is None and passive_login and not session.get("silent_checked"):
        return redirect(url_for(".login", passive="1"))
    return render_template(
        "payroll/home.html", protocol=PROTOCOL, friendly_names=saml.FRIENDLY_NAMES
    )


@bp.get("/login")
def login() -> ResponseReturnValue:
    passive = request.args.get("passive") == "1"
    try:
        auth = saml.get_auth()
    except Exception:  # network or metadata: either way the IdP is unusable
        return unreachable()
    url = auth.login(return_to=base_url() + "/", is_passive=passive)
    session["silent_checked"] = True
    session["passive_pending"] = passive
    session["saml_request_id"] = auth.get_last_request_id()
    return redirect(url)


@bp.post("/saml/acs")
def acs() -> ResponseReturnValue:
    request_id = session.pop("saml_request_id", None)
    passive = session.pop("passive_pending", False)
    if "SAMLResponse" not in request.form:
        return render_error(400, "Sign-in failed", "No SAMLResponse was posted.")
    try:
        auth = saml.get_auth()
        auth.process_response(request_id=request_id)
    except OneLogin_Saml2_Error as error:
        return refuse_response(str(error), passive)
    except Exception:  # hostile or broken XML must not become a 500
        current_app.logger.exception("unreadable SAMLResponse")
        return refuse_response("The SAMLResponse could not be read.", passive)
    if auth.get_errors() or not auth.is_authenticated():
        return refuse_response(auth.get_last_error_reason() or "not authenticated", passive)
    # python3-saml checks signature, audience, times and InResponseTo, not replay.
    if not get_store(current_app).first_time(f"assertion {auth.get_last_assertion_id()}"):
        return refuse_response("This assertion was already used.", False)
    start_user_session(saml.user_from(auth))
    return redirect(url_for(".home"))


def refuse_response(reason: str, passive: bool) -> ResponseReturnValue:
    if passive:
        # IsPassive: the IdP answers NoPassive when nobody is signed in (SAML Core §3.4.1).
        current_app.logger.info("passive sign-in did not succeed: %s", reason)
        return redirect(url_for(".home"))
    current_app.logger.warning("SAMLResponse refused: %s", reason)
    return render_error(400, "Sign-in failed", f"The SAML response was refused: {reason}")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = log_out_here()
    try:
        auth = saml.get_auth()
    except Exception:  # the IdP is unusable: end the local session only
        current_app.logger.exception("cannot load the IdP's SAML metadata")
        auth = None
    if auth is None or not auth.get_slo_url() or not user:
        flash("Signed out of Payroll only: the identity provider offers no single logout.")
        return redirect(url_for(".home"))
    url = auth.logout(
        return_to=base_url() + "/",
        name_id=user.get("name_id"),
        session_index=user.get("session_index"),
        nq=user.get("name_id_nq"),
        name_id_format=user.get("name_id_format"),
        spnq=user.get("name_id_spnq"),
    )
    session["saml_logout_request_id"] = auth.get_last_request_id()
    return redirect(url)


@bp.get("/saml/sls")
def sls() -> ResponseReturnValue:
    if "SAMLRequest" not in request.args and "SAMLResponse" not in request.args:
        return render_error(400, "Logout failed", "No SAMLRequest or SAMLResponse was sent.")
    # Unsigned logout messages would let any page log our users out.
    if "Signature" not in request.args:
        return render_error(400, "Logout refused", "The logout message is not signed.")
    try:
        auth = saml.get_auth()
    except Exception:  # network or metadata: the IdP is unusable
        return unreachable()
    request_id = session.pop("saml_logout_request_id", None)
    try:
        url = auth.process_slo(keep_local_session=True, request_id=request_id)
    except Exception:  # hostile or broken XML must not become a 500
        current_app.logger.exception("unreadable logout message")
        return render_error(400, "Logout refused", "The logout message could not be read.")
    if auth.get_errors():
        reason = auth.get_last_error_reason() or ", ".join(auth.get_errors())
        current_app.logger.warning("logout message refused: %s", reason)
        return render_error(400, "Logout refused", f"The logout message was refused: {reason}")
    if "SAMLRequest" in request.args:
        ended = saml.end_sessions_named_in(auth.get_last_request_xml())
        current_app.logger.info("SAML logout ended %d session(s)", ended)
        return redirect(url)
    end_user_session()
    session["silent_checked"] = True
    flash("You are signed out of the identity provider and of every app.")
    return redirect(url_for(".home"))


@bp.post(saml.SOAP_SLO_PATH)
def soap_logout() -> ResponseReturnValue:
    """End the sessions the IdP's back-channel LogoutRequest (SOAP binding) names; answer."""
    headers = {"Content-Type": "text/xml; charset=utf-8", "Cache-Control": "no-store"}
    try:
        answer = saml.answer_soap_logout(request.stream.read(saml.MAX_SOAP_BYTES + 1))
    except saml.SoapLogoutError as error:
        current_app.logger.warning("SOAP logout refused: %s", error)
        return saml.soap_fault(str(error)), 400, headers
    except Exception:  # the IdP's metadata cannot be loaded: try again later
        current_app.logger.exception("cannot answer a SOAP LogoutRequest")
        return saml.soap_fault("The identity provider is unreachable."), 503, headers
    return answer, 200, headers


def base_url() -> str:
    url: str = current_app.config["PAYROLL_BASE_URL"]
    return url


def unreachable() -> ResponseReturnValue:
    current_app.logger.exception("cannot load the IdP's SAML metadata")
    metadata_url = current_app.config["IDP_SAML_METADATA_URL"]
    message = f"Its SAML metadata at {metadata_url} could not be loaded; is it running?"
    return render_error(503, "Identity provider unreachable", message)
