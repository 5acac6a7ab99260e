"""The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2): login freshness, consent.

A request without a validated client and redirect_uri is shown here as an HTML 400; every other
refusal goes back to the client through the authorization server.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Final
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import UnsupportedResponseTypeError
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import InteractionRequiredError
from authlib.oidc.core.errors import LoginRequiredError
from flask import Response
from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from itsdangerous import BadData
from itsdangerous import URLSafeSerializer

from idp import audit
from idp import csrf
from idp import db
from idp import replay
from idp.attributes import SCOPES
from idp.mfa import pending as second_step
from idp.mfa import service as mfa
from idp.models.login import LoginSession
from idp.oidc import storage
from idp.oidc.acr import AcrRequest
from idp.oidc.acr import choose_acr
from idp.oidc.acr import is_multi_factor
from idp.oidc.acr import parse_acr_request
from idp.oidc.claims import parse_claims_request
from idp.oidc.claims import scopes_of
from idp.oidc.clients import allowed_scope
from idp.oidc.errors import UnmetAuthenticationRequirementsError
from idp.oidc.errors import render_oauth_error
from idp.oidc.grants import AuthorizationCodeGrant
from idp.oidc.grants import EndUser
from idp.oidc.server import OpenIDProvider
from idp.oidc.server import get_authorization_server
from idp.sessions import service as sessions

# The login page comes back to /authorize with this mark of the login the request asked for.
FRESH_LOGIN_PARAM: Final = "fresh_login"
FRESH_LOGIN_TTL: Final = timedelta(minutes=30)
_FRESH_LOGIN_SALT: Final = "idp.oidc.fresh-login"

SCOPE_DESCRIPTIONS = {
    "openid": "Confirm who you are",
    "profile": "Your name and profile",
    "email": "Your e-mail address",
    "groups": "The groups you belong to",
    "offline_access": "Stay signed in to the app while your session lasts",
}


CONSENT_PAGE_HEADERS = {"Cache-Control": "no-store"}  # not framed: idp/headers.py


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


def _step_up(
    login: LoginSession, acr_request: AcrRequest, *, redirect_uri: str, state: str | None
) -> ResponseReturnValue:
    """Ask this session's user for a second factor (not the password) and come back here.

    Raises:
        UnmetAuthenticationRequirementsError: the user has no second factor to give.
        InteractionRequiredError: ``prompt=none`` forbids asking.

    """
    if not mfa.has_second_factor(login.user):
        audit.record(
            "authentication_requirements_unmet",
            user_id=login.user_id,
            sid=login.sid,
            rp=request.values.get("client_id"),
            acr_values=" ".join(acr_request.values)[:200],
        )
        db.get_session().commit()
        raise UnmetAuthenticationRequirementsError(redirect_uri=redirect_uri, state=state)
    if "none" in _prompts():
        raise InteractionRequiredError(redirect_uri=redirect_uri, state=state)
    return second_step.ask_step_up(
        login, next_url=_authorization_url(request.values.get(FRESH_LOGIN_PARAM))
    )


def _needs_consent(login: LoginSession, client_id: str, scopes: set[str], trusted: bool) -> bool:
    if "consent" in _prompts():
        return True
    if trusted:
        return False
    consent = storage.get_consent(login.user_id, client_id)
    return consent is None or consent.revoked_at is not None or not scopes <= set(consent.scopes)


def _validate_response_type(server: OpenIDProvider) -> None:
    """Refuse a response_type other than ``code``, after the client and redirect_uri.

    Authlib looks at the response_type first, so ``/authorize?client_id=nope`` would be told
    its response_type is unsupported. Name the real problem first, in RFC 6749 §4.1.2.1's
    order: a missing or unknown client, or a bad redirect_uri, is shown here (never
    redirected); then a missing or unsupported response_type goes to the validated URI.
    Authlib's order: get_authorization_grant in
    https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/authorization_server.py#L236-L261
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
    # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/errors.py#L147-L148
    raise UnsupportedResponseTypeError(
        None,
        "The 'response_type' is not supported; use 'code'.",
        redirect_uri=redirect_uri,
        state=state,
    )


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
        payload = grant.request.payload
        acr_request = parse_acr_request(payload.data.get("acr_values"), payload.data.get("claims"))
        if acr_request.needs_mfa and not is_multi_factor(login.acr):
            return _step_up(login, acr_request, redirect_uri=redirect_uri, state=state)
        acr = choose_acr(login.acr, acr_request)
        if acr is None and acr_request.essential:
            # OIDC Core §5.5.1.1: an essential acr the login cannot state fails the request.
            raise UnmetAuthenticationRequirementsError(redirect_uri=redirect_uri, state=state)
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
    end_user = EndUser(user=login.user, login=login, client=client, acr=acr)
    response: Response = server.create_authorization_response(grant=grant, grant_user=end_user)
    return response
