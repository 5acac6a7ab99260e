"""Payroll: a SAML 2.0 service provider on python3-saml, with single logout (demo port 5003).

Start it with ``flask --app relying_party_demo.payroll:create_app run --port 5003`` or
``python -m relying_party_demo.payroll``; ``python -m relying_party_demo.payroll metadata``
prints its SP metadata (for ``idp sp add --metadata``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from flask import current_app
from flask import flash
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from relying_party_demo.common.config import load_settings
from relying_party_demo.common.layout import end_user_session
from relying_party_demo.common.layout import get_store
from relying_party_demo.common.layout import install_error_pages
from relying_party_demo.common.layout import is_enabled
from relying_party_demo.common.layout import make_app
from relying_party_demo.common.layout import render_error
from relying_party_demo.common.layout import render_home
from relying_party_demo.common.layout import require_csrf_token
from relying_party_demo.common.layout import section
from relying_party_demo.common.layout import start_user_session
from relying_party_demo.payroll.saml import FRIENDLY_NAMES
from relying_party_demo.payroll.saml import build_sp_settings
from relying_party_demo.payroll.saml import load_idp_settings
from relying_party_demo.payroll.saml import load_sp_keys
from relying_party_demo.payroll.saml import request_data

PROTOCOL = "SAML 2.0 (python3-saml)"
METADATA_TYPE = "application/samlmetadata+xml"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Payroll app; ``config`` overrides the environment (see the module docstring)."""
    settings = load_settings(
        {
            "IDP_SAML_METADATA_URL": None,
            "PAYROLL_SP_DIR": None,
            "PAYROLL_PASSIVE_LOGIN": "1",
        },
        config,
    )
    app = make_app(
        __name__, "payroll", "Payroll", "Payslips and salaries, behind single sign-on.", settings
    )
    install_error_pages(app)
    base_url = settings["PAYROLL_BASE_URL"]
    metadata_url = settings["IDP_SAML_METADATA_URL"] or settings["IDP_ISSUER"] + "/saml/metadata"
    sp_dir = Path(settings["PAYROLL_SP_DIR"] or Path(app.instance_path) / "payroll")
    key_pem, cert_pem = load_sp_keys(sp_dir)
    sp_settings = build_sp_settings(base_url, key_pem, cert_pem)
    app.extensions["payroll.sp_settings"] = sp_settings
    passive_login = is_enabled(settings["PAYROLL_PASSIVE_LOGIN"])
    idp_lock = threading.Lock()

    def saml_settings() -> dict[str, Any]:
        # Fetched at first use, so Payroll starts (and serves its metadata) before the IdP does.
        with idp_lock:
            idp = app.extensions.get("payroll.idp")
            if idp is None:
                idp = load_idp_settings(metadata_url)
                app.extensions["payroll.idp"] = idp
        return {**sp_settings, "idp": idp}

    def saml_auth() -> OneLogin_Saml2_Auth:
        data = request_data(
            base_url,
            request.path,
            request.query_string.decode("latin-1"),
            request.args.to_dict(),
            request.form.to_dict(),
        )
        return OneLogin_Saml2_Auth(data, old_settings=saml_settings())

    def unreachable() -> ResponseReturnValue:
        current_app.logger.exception("cannot load the IdP's SAML metadata")
        return render_error(
            503,
            "Identity provider unreachable",
            f"Its SAML metadata at {metadata_url} could not be loaded; is it running?",
        )

    @app.get("/saml/metadata")
    def metadata() -> ResponseReturnValue:
        return sp_metadata(sp_settings), 200, {"Content-Type": METADATA_TYPE}

    @app.get("/")
    def home() -> ResponseReturnValue:
        user = session.get("user")
        if user is None and passive_login and not session.get("silent_checked"):
            return redirect(url_for("login", passive="1"))
        sections = []
        if user is not None:
            sections = [
                section(
                    "SAML attributes",
                    [
                        (FRIENDLY_NAMES.get(name, name), values)
                        for name, values in user["attributes"].items()
                    ],
                    "From the signed assertion, checked by python3-saml against the IdP's "
                    "certificate.",
                ),
                section(
                    "Subject and session",
                    [
                        ("NameID", user["name_id"]),
                        ("NameID Format", user["name_id_format"] or "(unspecified)"),
                        ("SessionIndex", user["session_index"] or "(none)"),
                        ("Issuer", user["issuer"]),
                    ],
                    "The IdP's LogoutRequest names this SessionIndex to end the session.",
                ),
            ]
        return render_home(protocol=PROTOCOL, sections=sections)

    @app.get("/login")
    def login() -> ResponseReturnValue:
        passive = request.args.get("passive") == "1"
        try:
            auth = saml_auth()
        except Exception:  # network or metadata: either way the IdP is unusable
            return unreachable()
        url = auth.login(return_to=base_url + "/", is_passive=passive)
        session["silent_checked"] = True
        session["passive_pending"] = passive
        session["saml_request_id"] = auth.get_last_request_id()
        return redirect(url)

    @app.post("/saml/acs")
    def acs() -> ResponseReturnValue:
        request_id = session.pop("saml_request_id", None)
        passive = session.pop("passive_pending", False)
        if "SAMLResponse" not in request.form:
            return render_error(400, "Sign-in failed", "No SAMLResponse was posted.")
        try:
            auth = saml_auth()
            auth.process_response(request_id=request_id)
        except OneLogin_Saml2_Error as error:
            return refuse_response(str(error), passive)
        except Exception:  # hostile or broken XML must not become a 500
            current_app.logger.exception("unreadable SAMLResponse")
            return refuse_response("The SAMLResponse could not be read.", passive)
        if auth.get_errors() or not auth.is_authenticated():
            return refuse_response(auth.get_last_error_reason() or "not authenticated", passive)
        # python3-saml checks signature, audience, times and InResponseTo, not replay.
        assertion_id = auth.get_last_assertion_id()
        if not get_store(app).first_time(f"assertion {assertion_id}"):
            return refuse_response("This assertion was already used.", False)
        attributes = {name: list(values) for name, values in auth.get_attributes().items()}
        friendly = auth.get_friendlyname_attributes()
        mail = attributes.get("urn:oid:0.9.2342.19200300.100.1.3") or friendly.get("mail") or []
        display = (
            attributes.get("urn:oid:2.16.840.1.113730.3.1.241") or friendly.get("displayName") or []
        )
        start_user_session(
            {
                "name_id": auth.get_nameid(),
                "name_id_format": auth.get_nameid_format(),
                "name_id_nq": auth.get_nameid_nq(),
                "name_id_spnq": auth.get_nameid_spnq(),
                "session_index": auth.get_session_index(),
                "issuer": saml_settings()["idp"]["entityId"],
                "email": mail[0] if mail else auth.get_nameid(),
                "name": display[0] if display else None,
                "attributes": attributes,
            }
        )
        return redirect(url_for("home"))

    def refuse_response(reason: str, passive: bool) -> ResponseReturnValue:
        if passive:
            # IsPassive: the IdP answers NoPassive when nobody is signed in (SAML Core §3.4.1).
            current_app.logger.info("passive sign-in did not succeed: %s", reason)
            return redirect(url_for("home"))
        current_app.logger.warning("SAMLResponse refused: %s", reason)
        return render_error(400, "Sign-in failed", f"The SAML response was refused: {reason}")

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        require_csrf_token()
        user = session.get("user") or {}
        end_user_session()
        session["silent_checked"] = True
        try:
            auth = saml_auth()
        except Exception:  # the IdP is unusable: end the local session only
            current_app.logger.exception("cannot load the IdP's SAML metadata")
            auth = None
        if auth is None or not auth.get_slo_url() or not user:
            flash("Signed out of Payroll only: the identity provider offers no single logout.")
            return redirect(url_for("home"))
        url = auth.logout(
            return_to=base_url + "/",
            name_id=user.get("name_id"),
            session_index=user.get("session_index"),
            nq=user.get("name_id_nq"),
            name_id_format=user.get("name_id_format"),
            spnq=user.get("name_id_spnq"),
        )
        session["saml_logout_request_id"] = auth.get_last_request_id()
        return redirect(url)

    @app.get("/saml/sls")
    def sls() -> ResponseReturnValue:
        if "SAMLRequest" not in request.args and "SAMLResponse" not in request.args:
            return render_error(400, "Logout failed", "No SAMLRequest or SAMLResponse was sent.")
        # Unsigned logout messages would let any page log our users out.
        if "Signature" not in request.args:
            return render_error(400, "Logout refused", "The logout message is not signed.")
        try:
            auth = saml_auth()
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
            end_sessions_named_in(auth.get_last_request_xml())
            return redirect(url)
        end_user_session()
        session["silent_checked"] = True
        flash("You are signed out of the identity provider and of every app.")
        return redirect(url_for("home"))

    def end_sessions_named_in(logout_request: str) -> None:
        """End every local session the IdP's LogoutRequest names (SAML Core §3.7.3.2)."""
        indexes = set(OneLogin_Saml2_Logout_Request.get_session_indexes(logout_request))
        name_id = OneLogin_Saml2_Logout_Request.get_nameid(logout_request)

        def named(data: Mapping[str, Any]) -> bool:
            user = data.get("user")
            if not isinstance(user, dict) or user.get("name_id") != name_id:
                return False
            return not indexes or user.get("session_index") in indexes

        ended = get_store(app).end_where(named)
        current_app.logger.info("SAML logout ended %d session(s)", ended)

    return app


def sp_metadata(sp_settings: Mapping[str, Any]) -> str:
    """Return the SP metadata python3-saml builds from ``sp_settings``.

    Raises:
        OneLogin_Saml2_Error: the settings give invalid metadata.

    """
    saml = OneLogin_Saml2_Settings(dict(sp_settings), sp_validation_only=True)
    xml = saml.get_sp_metadata()
    errors = saml.validate_metadata(xml)
    if errors:
        raise OneLogin_Saml2_Error(f"invalid SP metadata: {', '.join(errors)}")
    text: str = xml.decode() if isinstance(xml, bytes) else xml
    return text
