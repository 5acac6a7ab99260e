"""OpenID Provider endpoints: discovery, JWKS, authorize (with consent), token, userinfo, ..."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import UnsupportedResponseTypeError
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import LoginRequiredError
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from itsdangerous import BadData
from itsdangerous import URLSafeSerializer
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import RequestEntityTooLarge

from idp import audit
from idp import csrf
from idp import db
from idp import replay
from idp.attributes import SCOPES
from idp.errors import render_http_error
from idp.errors import render_server_error
from idp.inputs import MalformedInputError
from idp.keys.store import get_key_store
from idp.models.login import LoginSession
from idp.oidc import discovery
from idp.oidc import registration
from idp.oidc import storage
from idp.oidc import tokens
from idp.oidc.claims import build_userinfo
from idp.oidc.claims import parse_claims_request
from idp.oidc.claims import scopes_of
from idp.oidc.clients import allowed_scope
from idp.oidc.grants import MAX_PARAMETER_LENGTH
from idp.oidc.grants import AuthorizationCodeGrant
from idp.oidc.grants import EndUser
from idp.oidc.grants import build_form_post
from idp.oidc.grants import validate_token_form
from idp.oidc.server import get_authorization_server
from idp.sessions import service as sessions
from idp.settings import Settings

bp = Blueprint("oidc", __name__)
# The login page comes back to /authorize with this mark of the login the request asked for.
FRESH_LOGIN_PARAM: Final = "fresh_login"
FRESH_LOGIN_TTL: Final = timedelta(minutes=30)
_FRESH_LOGIN_SALT: Final = "idp.oidc.fresh-login"
# JSON endpoints answer unexpected failures in JSON too (RFC 6749 §5.2 shape), never HTML.
JSON_ENDPOINTS = frozenset(
    {
        "oidc.token",
        "oidc.revoke",
        "oidc.introspect",
        "oidc.userinfo",
        "oidc.register",
        "oidc.jwks",
        "oidc.openid_configuration",
    }
)


@bp.errorhandler(Exception)
def _server_error(error: Exception) -> ResponseReturnValue:
    import logging

    if isinstance(error, HTTPException):  # aborts (CSRF, 404, ...) are not server errors
        return render_http_error(error)
    logging.getLogger(__name__).exception("unhandled error on %s", request.path)
    if request.endpoint in JSON_ENDPOINTS:
        return {"error": "server_error"}, 500, {"Cache-Control": "no-store"}
    return render_server_error()


@bp.errorhandler(MalformedInputError)
def _malformed(error: MalformedInputError) -> ResponseReturnValue:
    refusal = InvalidRequestError(error.description)
    if request.endpoint in JSON_ENDPOINTS:  # RFC 6749 §5.2, RFC 6750 §3.1
        return (
            {"error": refusal.error, "error_description": refusal.description},
            400,
            {"Cache-Control": "no-store"},
        )
    return render_oauth_error(refusal)  # no validated redirect_uri: an HTML 400


SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are",
    "profile": "Your name and profile",
    "email": "Your e-mail address",
    "groups": "The groups you belong to",
    "offline_access": "Stay signed in to the app while your session lasts",
}


CONSENT_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def _settings() -> Settings:
    settings: Settings = current_app.extensions["idp.settings"]
    return settings


def render_oauth_error(error: OAuth2Error) -> ResponseReturnValue:
    """Redirect the error to a validated redirect_uri, else show it here (never redirect)."""
    if error.redirect_uri:
        params = [("error", error.error)]
        if error.description:
            params.append(("error_description", error.description))
        # An oversized state is the error itself: echoing it would only amplify it.
        if error.state and len(error.state) <= MAX_PARAMETER_LENGTH:
            params.append(("state", error.state))
        params.append(("iss", _settings().issuer))  # RFC 9207
        mode = request.values.get("response_mode", "query")
        if mode == "form_post":
            status, body, headers = build_form_post(error.redirect_uri, params)
            return Response(body, status, headers)
        separator = "&" if "?" in error.redirect_uri else "?"
        return Response(
            status=302, headers={"Location": error.redirect_uri + separator + urlencode(params)}
        )
    page = render_template(
        "errors/oauth.html", error=error.error, description=error.description or ""
    )
    return page, 400


@dataclass(frozen=True)
class FreshLoginMark:
    """A login this authorization request asked for at ``asked_at`` (spent once by ``nonce``)."""

    asked_at: datetime
    nonce: str


def _prompts() -> set[str]:
    return set(request.values.get("prompt", "").split())


def _auth_too_old(login: LoginSession | None) -> bool:
    """Return whether ``max_age`` asks for a fresher login than ``login`` (validated always)."""
    raw = request.values.get("max_age")
    # OIDC Core §3.1.2.1: "Parameters sent without a value MUST be treated as if they were
    # omitted from the request."
    if not raw:
        return False
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise InvalidRequestError("Invalid 'max_age' parameter.")
    if login is None:
        return False
    age = (db.now() - login.auth_time).total_seconds()
    return age > int(raw)


def _request_args() -> list[tuple[str, str]]:
    """Return this authorization request's parameters, without the IdP's own bookkeeping."""
    args: list[tuple[str, str]] = [
        (key, value)
        for key in request.values
        if key not in ("prompt", FRESH_LOGIN_PARAM, csrf.FIELD, "decision")
        for value in request.values.getlist(key)
    ]
    if prompts := _prompts():
        args.append(("prompt", " ".join(sorted(prompts))))
    return args


def _authorization_url(fresh_login: str | None) -> str:
    """Return this authorization request as a GET URL (it may have come as a POST)."""
    # OIDC Core §3.1.2.1: "Authorization Servers MUST support the use of the HTTP GET and
    # POST methods"; the login and consent pages come back here with a GET or their own POST.
    args = _request_args()
    if fresh_login:
        args.append((FRESH_LOGIN_PARAM, fresh_login))
    return f"{request.path}?{urlencode(args)}"


def _fresh_login_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_FRESH_LOGIN_SALT)


def _request_digest() -> str:
    return hashlib.sha256(urlencode(sorted(_request_args())).encode()).hexdigest()


def _ask_fresh_login() -> str:
    """Return the mark of a login asked for now, for this very request."""
    mark = {"at": db.now().isoformat(), "nonce": secrets.token_urlsafe(16)}
    token: str = _fresh_login_serializer().dumps({**mark, "request": _request_digest()})
    return token


def _fresh_login_asked() -> FreshLoginMark | None:
    """Return this request's valid mark; None when absent, forged, another request's or old."""
    token = request.values.get(FRESH_LOGIN_PARAM, "")
    try:
        data = _fresh_login_serializer().loads(token)
        mark = FreshLoginMark(datetime.fromisoformat(data["at"]), str(data["nonce"]))
        digest = str(data["request"])
    except (BadData, KeyError, TypeError, ValueError):
        return None
    if not hmac.compare_digest(digest.encode(), _request_digest().encode()):
        return None
    if mark.asked_at.tzinfo is None or db.now() > mark.asked_at + FRESH_LOGIN_TTL:
        return None
    return mark


def _spend(mark: FreshLoginMark) -> bool:
    """Use the mark once: the same URL again (Back, a copied link) asks for a new login."""
    return replay.remember_once(f"oidc:fresh-login:{mark.nonce}", mark.asked_at + FRESH_LOGIN_TTL)


def _login_page(*, force: bool, redirect_uri: str | None, state: str | None) -> ResponseReturnValue:
    """Send the browser to log in for this request; ``prompt=none`` forbids it."""
    if "none" in _prompts():
        raise LoginRequiredError(redirect_uri=redirect_uri, state=state)
    return sessions.redirect_to_login(
        next_url=_authorization_url(_ask_fresh_login()),
        force=force,
        login_hint=request.values.get("login_hint"),
    )


def _needs_consent(login: LoginSession, client_id: str, scopes: set[str], trusted: bool) -> bool:
    if "consent" in _prompts():
        return True
    if trusted:
        return False
    consent = storage.get_consent(login.user_id, client_id)
    return consent is None or consent.revoked_at is not None or not scopes <= set(consent.scopes)


def _validate_response_type(server: AuthorizationServer) -> None:
    """Refuse a response_type other than ``code``, after the client and redirect_uri.

    Authlib looks at the response_type first, so ``/authorize?client_id=nope`` would be told
    its response_type is unsupported. Name the real problem first, in RFC 6749 §4.1.2.1's
    order: a missing or unknown client, or a bad redirect_uri, is shown here (never
    redirected); then a missing or unsupported response_type goes to the validated URI.
    """
    if request.values.get("response_type") in AuthorizationCodeGrant.RESPONSE_TYPES:
        return
    oauth_request = server.create_oauth2_request(request)
    AuthorizationCodeGrant.validate_no_multiple_request_parameter(oauth_request)
    client_id = oauth_request.payload.client_id
    if not client_id:
        raise InvalidClientError(description="Missing 'client_id' parameter.")
    client = server.query_client(client_id)
    if client is None:
        raise InvalidClientError(description="The client does not exist on this server.")
    redirect_uri = AuthorizationCodeGrant.validate_authorization_redirect_uri(oauth_request, client)
    state = oauth_request.payload.state
    if not request.values.get("response_type"):
        raise InvalidRequestError(
            "Missing 'response_type' parameter.", redirect_uri=redirect_uri, state=state
        )
    # Authlib would quote the value in error_description, which must be printable ASCII
    # (RFC 6749 §4.1.2.1): a hostile value would be a 500, a long one an amplifier.
    raise UnsupportedResponseTypeError(
        None,
        "The 'response_type' is not supported; use 'code'.",
        redirect_uri=redirect_uri,
        state=state,
    )


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    server = get_authorization_server()
    login = sessions.current_login()
    try:
        _validate_response_type(server)
        # A cross-site POST arrives without the SameSite=Lax cookie: once the client and
        # redirect_uri are valid, look again with a same-site GET (which carries it) before
        # answering login_required or showing the login page.
        look_again = login is None and request.method == "POST"
        try:
            grant = server.get_consent_grant(end_user=login)
        except LoginRequiredError:
            if not look_again:
                raise
        if look_again:
            return redirect(_authorization_url(request.values.get(FRESH_LOGIN_PARAM)), 303)
        redirect_uri = grant.redirect_uri
        state = grant.request.payload.state
        prompts = _prompts()
        try:
            too_old = _auth_too_old(login)
        except InvalidRequestError as error:
            error.redirect_uri, error.state = redirect_uri, state
            raise
        # OIDC Core §3.1.2.1: the login this request asked for satisfies its max_age and
        # prompt=login, however long the user took; without that, /login looped forever.
        asked = _fresh_login_asked()
        fresh = login is not None and asked is not None and login.auth_time >= asked.asked_at
        force = not fresh and (too_old or (login is not None and "login" in prompts))
        if login is None or force:
            return _login_page(force=force, redirect_uri=redirect_uri, state=state)
        client = grant.client
        # Claims named in the ``claims`` parameter need the consent their scopes need.
        named = scopes_of(parse_claims_request(grant.request.payload.data.get("claims")))
        requested = " ".join([grant.request.payload.scope or "", *sorted(named)])
        scopes = set(allowed_scope(client, requested, user_is_admin=login.user.is_admin).split())
        if _needs_consent(login, client.client_id, scopes, client.is_trusted):
            if "none" in prompts:
                raise ConsentRequiredError(redirect_uri=redirect_uri, state=state)
            if request.method == "GET" or "decision" not in request.form:
                page = render_template(
                    "oidc/consent.html",
                    action=_authorization_url(request.values.get(FRESH_LOGIN_PARAM)),
                    client=client,
                    login=login,
                    scopes=[
                        (scope, SCOPE_DESCRIPTIONS.get(scope, scope))
                        for scope in SCOPES
                        if scope in scopes
                    ],
                )
                # RFC 6819 §4.4.1.9: a framed consent page can be clickjacked.
                return page, 200, CONSENT_PAGE_HEADERS
            csrf.validate()
            if request.form["decision"] != "allow":
                audit.record(
                    "consent_denied", user_id=login.user_id, sid=login.sid, rp=client.client_id
                )
                db.get_session().commit()
                raise AccessDeniedError(redirect_uri=redirect_uri, state=state)
            storage.save_consent(login.user_id, client.client_id, sorted(scopes), db.now())
            audit.record(
                "consent_granted",
                user_id=login.user_id,
                sid=login.sid,
                rp=client.client_id,
                scope=" ".join(sorted(scopes)),
            )
            db.get_session().commit()
        if asked is not None and fresh and not _spend(asked):
            return _login_page(force=True, redirect_uri=redirect_uri, state=state)
    except OAuth2Error as error:
        return render_oauth_error(error)
    end_user = EndUser(user=login.user, login=login, client=client)
    response: Response = server.create_authorization_response(grant=grant, grant_user=end_user)
    return response


@bp.route("/token", methods=["GET", "POST"])
def token() -> ResponseReturnValue:
    server = get_authorization_server()
    try:
        # RFC 6749 §3.2: "The client MUST use the HTTP "POST" method", with the parameters
        # form-encoded in the body (§4.1.3); JSON or query parameters are refused, not guessed.
        if request.method != "POST":
            raise InvalidRequestError("The token endpoint accepts POST only.", status_code=405)
        if request.mimetype != "application/x-www-form-urlencoded":
            raise InvalidRequestError("The body must be application/x-www-form-urlencoded.")
        if request.args:
            raise InvalidRequestError("Send the parameters in the body, not the URL.")
        try:
            form = request.form.to_dict(flat=False)
        except RequestEntityTooLarge:
            raise InvalidRequestError("The request is too large.", status_code=413) from None
        validate_token_form(form)
    except OAuth2Error as error:
        response: Response = server.handle_response(*error())
        if error.status_code == 405:
            response.headers["Allow"] = "POST"
    else:
        response = server.create_token_response()
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.route("/revoke", methods=["POST"])
def revoke() -> ResponseReturnValue:
    response: Response = get_authorization_server().create_endpoint_response("revocation")
    return response


@bp.route("/introspect", methods=["POST"])
def introspect() -> ResponseReturnValue:
    response: Response = get_authorization_server().create_endpoint_response("introspection")
    response.headers["Cache-Control"] = "no-store"
    return response


def _bearer_error(code: str, description: str, status: int = 401) -> ResponseReturnValue:
    # RFC 6750 §3: the error goes in WWW-Authenticate.
    header = f'Bearer error="{code}", error_description="{description}"'
    body = {"error": code, "error_description": description}
    return body, status, {"WWW-Authenticate": header, "Cache-Control": "no-store"}


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    authorization = request.headers.get("Authorization", "")
    from_header = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if from_header and from_body:
        return _bearer_error("invalid_request", "Use one method to send the token.", 400)
    access_token = from_header or from_body
    if not access_token:
        return (
            {"error": "invalid_request"},
            401,
            {"WWW-Authenticate": "Bearer", "Cache-Control": "no-store"},
        )
    row = tokens.verify_access_token(access_token)
    if row is None or row.user is None:
        return _bearer_error("invalid_token", "The access token is invalid or expired.")
    client = storage.get_client(row.client_id)
    if client is None:  # disabled since: its tokens die with it
        return _bearer_error("invalid_token", "The access token is invalid or expired.")
    if "openid" not in row.scope.split():
        return _bearer_error("insufficient_scope", "The token lacks the openid scope.", 403)
    claims: dict[str, Any] = build_userinfo(
        user=row.user,
        scope=row.scope,
        client=client,
        requested=(row.claims or {}).get("userinfo"),
    )
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/jwks")
def jwks() -> ResponseReturnValue:
    response = jsonify(get_key_store().public_jwks(db.now()))
    max_age = int(_settings().jwks_max_age.total_seconds())
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


# Endpoints other parts of the IdP may serve: named in discovery only when they exist.
OPTIONAL_ENDPOINTS = {
    "registration_endpoint": "oidc.register",
    "end_session_endpoint": "oidc.end_session",
}


def _optional_endpoints() -> dict[str, str]:
    paths: dict[str, str] = {}
    for name, endpoint in OPTIONAL_ENDPOINTS.items():
        if endpoint in current_app.view_functions:
            paths[name] = next(current_app.url_map.iter_rules(endpoint)).rule
    # RFC 7591 registration is off until an initial access token is configured.
    if not _settings().registration_token:
        paths.pop("registration_endpoint", None)
    return paths


@bp.route("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    metadata = discovery.build_metadata(_settings(), optional_endpoints=_optional_endpoints())
    response = jsonify(metadata)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.route("/register", methods=["POST"])
def register() -> ResponseReturnValue:
    status, body, headers = registration.create_registration_response(
        registration_token=_settings().registration_token,
        authorization=request.headers.get("Authorization"),
        mimetype=request.mimetype,
        body=request.get_data(cache=False),
    )
    return body, status, headers


# The confirmation form's own fields are not carried over to the GET that looks for the cookie.
_NOT_HOPPED = frozenset({csrf.FIELD, "confirm"})


def _end_hinted_login(claims: dict[str, Any], current: LoginSession | None) -> LoginSession | None:
    """End the live session the hint's ``sid`` names, with or without this browser's cookie."""
    hinted = sessions.get_login_by_sid(claims["sid"]) if claims else None
    if hinted is None or not sessions.is_login_active(hinted, db.now()):
        return None
    if current is not None and current.id == hinted.id:
        sessions.end_current_login("rp_logout")
    else:
        sessions.revoke_login(hinted, "rp_logout")
    return hinted


@bp.route("/end_session", methods=["GET", "POST"])
def end_session() -> ResponseReturnValue:
    """RP-Initiated Logout 1.0: confirm unless a valid id_token_hint proves the RP asked."""
    from idp.sessions import logout as session_logout

    server = get_authorization_server()
    try:
        end_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return render_oauth_error(error)  # never redirects: no validated redirect here
    login = sessions.current_login()
    # A valid hint proves the RP asked: the session it names ends, cookie or not (a
    # cross-site POST carries no SameSite=Lax cookie). Only the RP proven by its hint is left
    # out of the iframes: it logged itself out; a client_id alone is no proof.
    ended = _end_hinted_login(end_request.id_token_claims or {}, login)
    urls: list[str] = []
    if ended is not None:
        initiator = end_request.client.client_id if end_request.client else None
        urls = session_logout.front_channel_urls(ended, initiator=initiator)
        login = None if login is not None and login.id == ended.id else login
    elif login is None and request.method == "POST":
        # Look again with a same-site GET, which carries the cookie, before concluding that
        # this browser has no session (and saying it is signed out).
        hop = [item for item in request.values.items(multi=True) if item[0] not in _NOT_HOPPED]
        return Response(status=303, headers={"Location": f"{request.path}?{urlencode(hop)}"})
    if login is not None:
        if request.method == "GET" or "confirm" not in request.form:
            params = [item for item in request.values.items(multi=True) if item[0] != csrf.FIELD]
            return render_template(
                "oidc/confirm_logout.html",
                login=login,
                client=end_request.client,
                params=params,
                frontchannel_urls=urls,
            )
        csrf.validate()
        sessions.end_current_login("rp_logout")
        urls += session_logout.front_channel_urls(login)
    if not urls and end_request.redirect_uri:
        # Nothing needs the browser: a plain redirect, as oidc-provider and Keycloak answer.
        return Response(status=303, headers={"Location": end_request.redirect_uri})
    return render_template(
        "sessions/logged_out.html", frontchannel_urls=urls, redirect_to=end_request.redirect_uri
    )
