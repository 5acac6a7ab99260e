"""The ``oidc`` blueprint: its URLs, and the endpoints programs call (token, userinfo, jwks, ...).

The browser-facing endpoints live in their own modules: ``authorize_view.py`` (the
authorization endpoint, login freshness and consent) and ``end_session_view.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from idp import db
from idp.errors import mark_protocol_endpoints
from idp.inputs import MalformedInputError
from idp.keys.store import get_key_store
from idp.oidc import discovery
from idp.oidc import registration
from idp.oidc import tokens
from idp.oidc.authorize_view import authorize
from idp.oidc.claims import build_userinfo
from idp.oidc.end_session_view import end_session
from idp.oidc.errors import BearerRequestError
from idp.oidc.errors import InsufficientScopeError
from idp.oidc.errors import MethodNotAllowedError
from idp.oidc.errors import MissingTokenError
from idp.oidc.errors import render_oauth_error
from idp.oidc.grants import validate_token_form
from idp.oidc.server import get_authorization_server
from idp.settings import get_settings

bp = Blueprint("oidc", __name__)
bp.add_url_rule("/authorize", view_func=authorize, methods=["GET", "POST"])
bp.add_url_rule("/end_session", view_func=end_session, methods=["GET", "POST"])
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
bp.record_once(lambda state: mark_protocol_endpoints(state.app, JSON_ENDPOINTS))


@bp.errorhandler(MalformedInputError)
def _malformed(error: MalformedInputError) -> ResponseReturnValue:
    refusal = InvalidRequestError(error.description)
    if request.endpoint in JSON_ENDPOINTS:  # RFC 6749 §5.2, RFC 6750 §3.1
        response: Response = get_authorization_server().handle_error_response(request, refusal)
        return response
    return render_oauth_error(refusal)  # no validated redirect_uri: an HTML 400


@bp.route("/token", methods=["GET", "POST"])
def token() -> ResponseReturnValue:
    server = get_authorization_server()
    try:
        # RFC 6749 §3.2: "The client MUST use the HTTP "POST" method", with the parameters
        # form-encoded in the body (§4.1.3); JSON or query parameters are refused, not guessed.
        if request.method != "POST":
            raise MethodNotAllowedError()
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
        response: Response = server.handle_error_response(request, error)
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


def _userinfo_claims() -> dict[str, Any]:
    """Return the claims of the Bearer token this request carries (OIDC Core §5.3)."""
    authorization = request.headers.get("Authorization", "")
    from_header = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if from_header and from_body:
        raise BearerRequestError("Use one method to send the token.")
    access_token = from_header or from_body
    if not access_token:
        raise MissingTokenError()
    # A personal access token works here too, recognised by its prefix.
    bearer = tokens.authenticate_bearer(access_token, request.remote_addr, resource="userinfo")
    if bearer is None or bearer.user is None:
        raise InvalidTokenError("The access token is invalid or expired.")
    if "openid" not in bearer.scopes:
        raise InsufficientScopeError("The token lacks the openid scope.")
    claims: dict[str, Any] = build_userinfo(
        user=bearer.user,
        scope=bearer.scope,
        client=bearer.client,
        requested=(bearer.row.claims or {}).get("userinfo") if bearer.row else None,
    )
    return claims


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> ResponseReturnValue:
    try:
        claims = _userinfo_claims()
    except OAuth2Error as error:
        refusal: Response = get_authorization_server().handle_error_response(request, error)
        return refusal
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


def _prebuilt(name: str, version: object, build: Callable[[], Any]) -> tuple[bytes, str]:
    """Return the JSON bytes of ``build()`` and their ETag, built once per ``version``.

    The documents every client fetches change only with the configuration or the keys: the
    bytes are built on first use and reused until ``version`` changes.
    """
    documents: dict[str, tuple[object, bytes, str]] = current_app.extensions.setdefault(
        "idp.oidc.documents", {}
    )
    cached = documents.get(name)
    if cached is None or cached[0] != version:
        body = current_app.json.dumps(build()).encode()
        cached = documents[name] = (version, body, hashlib.sha256(body).hexdigest()[:32])
    return cached[1], cached[2]


def _document(body: bytes, etag: str, max_age: int) -> ResponseReturnValue:
    """Answer the bytes with their ETag, or 304 to an If-None-Match naming it (RFC 9110 §13.1.2)."""
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response.make_conditional(request)


@bp.route("/jwks")
def jwks() -> ResponseReturnValue:
    key_set = get_key_store().public_jwks(db.now())
    # The published keys change with the clock (next -> active -> retiring) and on rotation.
    version = tuple(key["kid"] for key in key_set["keys"])
    body, etag = _prebuilt("jwks", version, lambda: key_set)
    return _document(body, etag, int(get_settings().jwks_max_age.total_seconds()))


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
    if not get_settings().registration_token:
        paths.pop("registration_endpoint", None)
    return paths


@bp.route("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    body, etag = _prebuilt(
        "openid-configuration",
        get_settings(),  # routes are fixed once the app is built
        lambda: discovery.build_metadata(get_settings(), optional_endpoints=_optional_endpoints()),
    )
    return _document(body, etag, 3600)


@bp.route("/register", methods=["POST"])
def register() -> ResponseReturnValue:
    try:
        status, body, headers = registration.create_registration_response(
            registration_token=get_settings().registration_token,
            authorization=request.headers.get("Authorization"),
            mimetype=request.mimetype,
            body=request.get_data(cache=False),
        )
    except OAuth2Error as error:
        refusal: Response = get_authorization_server().handle_error_response(request, error)
        return refusal
    return body, status, headers
