"""An OpenID Connect relying party built on Authlib's Flask client (Notes and Wiki are two of them).

Code flow with PKCE S256 (RFC 7636), RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask
from flask import current_app
from flask import flash
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue

from relying_party_demo.common.backchannel import KeysUnavailableError
from relying_party_demo.common.backchannel import LogoutTokenError
from relying_party_demo.common.backchannel import ends_session
from relying_party_demo.common.backchannel import validate_logout_token
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

SCOPE = "openid profile email"
HTTP_TIMEOUT_SECONDS = 10
ASYMMETRIC_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
# Answers to prompt=none that only mean "nobody is signed in at the IdP" (OIDC Core §3.1.2.6).
SILENT_FAILURES = {
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
}


@dataclass(frozen=True)
class RelyingParty:
    name: str
    title: str
    tagline: str
    public: bool
    default_client_secret: str | None = None

    @property
    def prefix(self) -> str:
        return self.name.upper()

    @property
    def protocol(self) -> str:
        kind = "public client with PKCE" if self.public else "confidential client with PKCE"
        return f"OpenID Connect ({kind})"


def create_oidc_app(
    import_name: str, rp: RelyingParty, config: Mapping[str, Any] | None = None
) -> Flask:
    """Return the Flask app of the relying party ``rp``."""
    defaults: dict[str, Any] = {
        f"{rp.prefix}_CLIENT_ID": rp.name,
        f"{rp.prefix}_SILENT_LOGIN": "1",
    }
    if not rp.public:
        defaults[f"{rp.prefix}_CLIENT_SECRET"] = rp.default_client_secret
    settings = load_settings(defaults, config)
    app = make_app(import_name, rp.name, rp.title, rp.tagline, settings)
    install_error_pages(app)
    base_url = settings[f"{rp.prefix}_BASE_URL"]
    client_id = settings[f"{rp.prefix}_CLIENT_ID"]
    silent_login = is_enabled(settings[f"{rp.prefix}_SILENT_LOGIN"])
    client_kwargs: dict[str, Any] = {
        "scope": SCOPE,
        "code_challenge_method": "S256",
        "default_timeout": HTTP_TIMEOUT_SECONDS,
    }
    if rp.public:
        client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 (a method name)
    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        client_id=client_id,
        client_secret=None if rp.public else settings[f"{rp.prefix}_CLIENT_SECRET"],
        server_metadata_url=settings["IDP_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )
    callback_url = base_url + "/callback"
    home_url = base_url + "/"

    def unreachable() -> ResponseReturnValue:
        current_app.logger.exception("the identity provider did not answer")
        return render_error(
            503,
            "Identity provider unreachable",
            f"{settings['IDP_ISSUER']} did not answer; is it running?",
        )

    @app.get("/")
    def home() -> ResponseReturnValue:
        if request.args.get("state") and "user" not in session:
            return after_logout()
        user = session.get("user")
        if user is None and silent_login and not session.get("silent_checked"):
            return redirect(url_for("login", silent="1"))
        sections = []
        if user is not None:
            sections = [
                section(
                    "ID token claims",
                    user["claims"],
                    "Verified by Authlib against the IdP's JWKS: signature, iss, aud, nonce, exp.",
                ),
                section("UserInfo response", user["userinfo"], "From the userinfo endpoint."),
                section(
                    f"Session kept by {rp.title}",
                    [
                        ("sid", user.get("sid") or "(none)"),
                        ("sub", user["sub"]),
                        ("client_id", client_id),
                        ("back-channel logout", base_url + "/backchannel-logout"),
                    ],
                    "Kept on the server; the cookie only holds a random key.",
                ),
            ]
        return render_home(protocol=rp.protocol, sections=sections)

    def after_logout() -> ResponseReturnValue:
        try:
            idp.validate_logout_response()
        except OAuthError:
            # Not the state we sent (an old or forged link): say nothing.
            return redirect(url_for("home"))
        session["silent_checked"] = True
        flash("You are signed out of the identity provider and of every app.")
        return redirect(url_for("home"))

    @app.get("/login")
    def login() -> ResponseReturnValue:
        silent = request.args.get("silent") == "1"
        session["silent_checked"] = True
        session["silent_pending"] = silent
        extra = {"prompt": "none"} if silent else {}
        try:
            response: ResponseReturnValue = idp.authorize_redirect(callback_url, **extra)
        except (requests.RequestException, ValueError):
            return unreachable()
        return response

    @app.get("/callback")
    def callback() -> ResponseReturnValue:
        silent = session.pop("silent_pending", False)
        error = request.args.get("error")
        if error:
            if silent and error in SILENT_FAILURES:
                return redirect(url_for("home"))
            description = request.args.get("error_description") or error
            return render_error(
                400, "Sign-in refused", f"The identity provider said: {description}"
            )
        try:
            metadata = idp.load_server_metadata()
        except (requests.RequestException, ValueError):
            return unreachable()
        # RFC 9207 §2.4: reject a response whose iss is not the IdP the request went to.
        iss = request.args.get("iss")
        expects_iss = metadata.get("authorization_response_iss_parameter_supported")
        if iss != metadata.get("issuer") and (iss is not None or expects_iss):
            return render_error(400, "Sign-in refused", "The response came from another issuer.")
        try:
            token = idp.authorize_access_token()
        except OAuthError as failure:
            return render_error(400, "Sign-in failed", failure.description or failure.error)
        except (requests.RequestException, ValueError):
            return unreachable()
        claims = dict(token["userinfo"])
        try:
            userinfo = dict(idp.userinfo(token=token))
        except (requests.RequestException, ValueError):
            current_app.logger.warning("userinfo failed; showing the ID token claims only")
            userinfo = {}
        start_user_session(
            {
                "sub": claims["sub"],
                "sid": claims.get("sid"),
                "name": userinfo.get("name") or claims.get("name"),
                "email": userinfo.get("email") or claims.get("email"),
                "claims": claims,
                "userinfo": userinfo,
                "id_token": token["id_token"],
            }
        )
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        require_csrf_token()
        user = session.get("user") or {}
        end_user_session()
        session["silent_checked"] = True
        try:
            metadata = idp.load_server_metadata()
        except (requests.RequestException, ValueError):
            metadata = {}
        if not metadata.get("end_session_endpoint"):
            flash(f"Signed out of {rp.title} only: the identity provider offers no single logout.")
            return redirect(url_for("home"))
        response: ResponseReturnValue = idp.logout_redirect(
            post_logout_redirect_uri=home_url,
            id_token_hint=user.get("id_token"),
            client_id=client_id,
        )
        return response

    @app.post("/backchannel-logout")
    def backchannel_logout() -> ResponseReturnValue:
        token = request.form.get("logout_token")
        if not token:
            return refuse("logout_token is missing")
        try:
            metadata = idp.load_server_metadata()
            algorithms = sorted(
                ASYMMETRIC_ALGS
                & set(metadata.get("id_token_signing_alg_values_supported", ["RS256"]))
            )
            claims = validate_logout_token(
                token,
                key_for=signing_key,
                issuer=metadata["issuer"],
                client_id=client_id,
                algorithms=algorithms,
            )
        except LogoutTokenError as error:
            return refuse(str(error))
        except (KeysUnavailableError, requests.RequestException, KeyError, ValueError):
            current_app.logger.exception("cannot check a logout token now")
            return {"error": "temporarily_unavailable"}, 503, {"Cache-Control": "no-store"}
        store = get_store(app)
        # §2.6 step 8, optional: a jti seen before is a replay.
        if not store.first_time(f"logout_token {claims['iss']} {claims['jti']}"):
            return refuse("this logout_token was already used")
        ended = store.end_where(ends_session(claims))
        current_app.logger.info("back-channel logout ended %d session(s)", ended)
        return "", 200, {"Cache-Control": "no-store"}

    def refuse(description: str) -> ResponseReturnValue:
        # §2.8: "If the logout request fails, the RP SHOULD respond with 400 Bad Request".
        body = {"error": "invalid_request", "error_description": description}
        return body, 400, {"Cache-Control": "no-store"}

    def signing_key(token: str) -> Any:
        # The JWKS Authlib fetched to check ID tokens, refetched only for an unknown kid: the
        # IdP may be busy sending this very logout and unable to serve /jwks meanwhile.
        kid = jwt.get_unverified_header(token).get("kid")
        for force in (False, True):
            try:
                keys = jwt.PyJWKSet.from_dict(idp.fetch_jwk_set(force=force)).keys
            except requests.RequestException:
                raise KeysUnavailableError("the IdP's JWKS cannot be fetched") from None
            found = [key for key in keys if kid is None or key.key_id == kid]
            if len(found) == 1:
                return found[0].key
        raise jwt.InvalidKeyError("no key of the IdP's JWKS matches the logout_token's kid")

    return app
