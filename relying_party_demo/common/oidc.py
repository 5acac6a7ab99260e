"""OpenID Connect glue for Notes and Wiki on Authlib's Flask client: register, sign in, log out.

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
from flask import request
from flask.typing import ResponseReturnValue

from relying_party_demo.common.backchannel import KeysUnavailableError
from relying_party_demo.common.backchannel import LogoutTokenError
from relying_party_demo.common.backchannel import ends_session
from relying_party_demo.common.backchannel import validate_logout_token
from relying_party_demo.common.layout import get_store

SCOPE = "openid profile email"
HTTP_TIMEOUT_SECONDS = 10
ASYMMETRIC_ALGS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
# What Authlib's client lets through when the IdP does not answer, or answers nonsense.
UNREACHABLE = (requests.RequestException, ValueError)


@dataclass(frozen=True)
class RelyingParty:
    """Describe the app as the IdP knows it; no ``client_secret`` makes it a public client."""

    client_id: str
    client_secret: str | None
    base_url: str
    silent_login: bool

    @property
    def protocol(self) -> str:
        kind = "public" if self.client_secret is None else "confidential"
        return f"OpenID Connect ({kind} client with PKCE)"


class SignInError(Exception):
    """The IdP's answer signs nobody in; ``heading`` and the message say why, on a 400 page."""

    def __init__(self, heading: str, message: str) -> None:
        super().__init__(message)
        self.heading = heading


def init_app(app: Flask, rp: RelyingParty) -> None:
    """Register the IdP with Authlib, configured from its discovery document."""
    client_kwargs: dict[str, Any] = {
        "scope": SCOPE,
        "code_challenge_method": "S256",
        "default_timeout": HTTP_TIMEOUT_SECONDS,
    }
    if rp.client_secret is None:
        client_kwargs["token_endpoint_auth_method"] = "none"  # noqa: S105 (a method name)
    OAuth(app).register(
        "idp",
        client_id=rp.client_id,
        client_secret=rp.client_secret,
        server_metadata_url=app.config["IDP_ISSUER"] + "/.well-known/openid-configuration",
        client_kwargs=client_kwargs,
    )
    app.extensions["demo.oidc"] = rp


def get_rp() -> RelyingParty:
    """Return the current app's :class:`RelyingParty`."""
    rp: RelyingParty = current_app.extensions["demo.oidc"]
    return rp


def get_idp() -> Any:
    """Return Authlib's client for the IdP."""
    return current_app.extensions["authlib.integrations.flask_client"].idp


def complete_login() -> dict[str, Any]:
    """Check the authorization response, redeem its code; return the user to keep.

    Raises:
        SignInError: the response is refused.
        requests.RequestException, ValueError: the IdP cannot be reached.

    """
    idp = get_idp()
    metadata = idp.load_server_metadata()
    # RFC 9207 §2.4: reject a response whose iss is not the IdP the request went to.
    iss = request.args.get("iss")
    expects_iss = metadata.get("authorization_response_iss_parameter_supported")
    if iss != metadata.get("issuer") and (iss is not None or expects_iss):
        raise SignInError("Sign-in refused", "The response came from another issuer.")
    try:
        token = idp.authorize_access_token()
    except OAuthError as failure:
        raise SignInError("Sign-in failed", failure.description or failure.error) from None
    claims = dict(token["userinfo"])
    try:
        userinfo = dict(idp.userinfo(token=token))
    except UNREACHABLE:
        current_app.logger.warning("userinfo failed; showing the ID token claims only")
        userinfo = {}
    return {
        "sub": claims["sub"],
        "sid": claims.get("sid"),
        "name": userinfo.get("name") or claims.get("name"),
        "email": userinfo.get("email") or claims.get("email"),
        "claims": claims,
        "userinfo": userinfo,
        "id_token": token["id_token"],
    }


def logout_redirect(user: Mapping[str, Any]) -> ResponseReturnValue | None:
    """Return the redirect to the IdP's end_session_endpoint, or None if it offers none."""
    idp, rp = get_idp(), get_rp()
    try:
        metadata = idp.load_server_metadata()
    except UNREACHABLE:
        return None
    if not metadata.get("end_session_endpoint"):
        return None
    response: ResponseReturnValue = idp.logout_redirect(
        post_logout_redirect_uri=rp.base_url + "/",
        id_token_hint=user.get("id_token"),
        client_id=rp.client_id,
    )
    return response


def is_logout_response() -> bool:
    """Return whether this request is the IdP sending the browser back after our logout."""
    try:
        get_idp().validate_logout_response()
    except OAuthError:
        return False  # not the state we sent: an old or forged link
    return True


def end_sessions(logout_token: str) -> int:
    """End the sessions a Back-Channel Logout Token names (§2.6, §2.7); return how many.

    Raises:
        LogoutTokenError: the token is refused (answer 400).
        KeysUnavailableError, requests.RequestException, KeyError, ValueError: the IdP's
            metadata or keys cannot be had now (answer 503).

    """
    metadata = get_idp().load_server_metadata()
    algorithms = ASYMMETRIC_ALGS & set(
        metadata.get("id_token_signing_alg_values_supported", ["RS256"])
    )
    claims = validate_logout_token(
        logout_token,
        key_for=signing_key,
        issuer=metadata["issuer"],
        client_id=get_rp().client_id,
        algorithms=sorted(algorithms),
    )
    store = get_store(current_app)
    # §2.6 step 8, optional: a jti seen before is a replay.
    if not store.first_time(f"logout_token {claims['iss']} {claims['jti']}"):
        raise LogoutTokenError("this logout_token was already used")
    return store.end_where(ends_session(claims))


def signing_key(token: str) -> Any:
    """Return the key of the IdP's JWKS that ``token`` names by its kid."""
    # The JWKS Authlib fetched to check ID tokens, refetched only for an unknown kid: the
    # IdP may be busy sending this very logout and unable to serve /jwks meanwhile.
    kid = jwt.get_unverified_header(token).get("kid")
    for force in (False, True):
        try:
            keys = jwt.PyJWKSet.from_dict(get_idp().fetch_jwk_set(force=force)).keys
        except requests.RequestException:
            raise KeysUnavailableError("the IdP's JWKS cannot be fetched") from None
        found = [key for key in keys if kid is None or key.key_id == kid]
        if len(found) == 1:
            return found[0].key
    raise jwt.InvalidKeyError("no key of the IdP's JWKS matches the logout_token's kid")
