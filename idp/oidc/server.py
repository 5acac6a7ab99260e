"""Build the Authlib authorization server: grants, token generator, endpoints, client auth."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask
from flask import Response
from flask import current_app
from flask import request as flask_request
from flask import url_for
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from werkzeug.datastructures import MultiDict

from idp import db
from idp import limits
from idp import outbound
from idp.models.oidc import OAuthClient
from idp.oidc import grants
from idp.oidc import storage
from idp.oidc import tokens
from idp.oidc.endpoints import Introspection
from idp.oidc.endpoints import Revocation
from idp.oidc.refresh import RefreshTokenGrant
from idp.oidc.responses import ResponseTuple
from idp.oidc.responses import build_authorization_response
from idp.replay import remember_once
from idp.sessions import logout as session_logout
from idp.sessions import requesters
from idp.settings import Settings
from idp.settings import get_settings

logger = logging.getLogger(__name__)

# RFC 7523 §3: assertions must be short-lived; we refuse any promising to live longer.
MAX_ASSERTION_LIFETIME = timedelta(minutes=10)
# Longer than any RSA-4096 signed assertion with room to spare; not read past this.
MAX_ASSERTION_LENGTH = 8192


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 §2.2 client authentication with the client's registered public keys."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        # Authlib lets a mistyped header ("crit": 1) or claims nested past the JSON parser's
        # depth escape as TypeError or RecursionError: a 500 instead of invalid_client.
        # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc7523/client.py#L145-L160
        try:
            tokens.validate_jws_header(assertion)
            headers, claims = super().extract_assertion(assertion)
        except (JoseError, RecursionError):
            raise InvalidClientError(description="Invalid JWT assertion.") from None
        return headers, claims

    def get_audiences(self) -> list[str]:
        issuer = get_settings().issuer
        return [issuer, f"{issuer}/token"]

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        exp = claims.get("exp")
        now = db.now()
        lifetime = MAX_ASSERTION_LIFETIME.total_seconds()
        if not isinstance(exp, int) or exp - now.timestamp() > lifetime:
            raise InvalidClientError(description="The assertion must expire within 10 minutes.")
        # Hashed: the jti is the client's choice, of any length; the key column is not.
        digest = hashlib.sha256(f"{claims['sub']}\x00{jti}".encode()).hexdigest()
        return remember_once(
            f"jwt-assertion:{digest}",
            datetime.fromtimestamp(exp, UTC) + timedelta(seconds=60),
        )

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            raise InvalidClientError(description="The client does not use private_key_jwt.")
        jwks = client.jwks or fetch_jwks(client)
        if not jwks:
            raise InvalidClientError(description="The client has no usable registered keys.")
        try:
            return KeySet.import_key_set(cast(Any, jwks))
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidClientError(
                description="The client's registered keys are unusable."
            ) from None


# A client's jwks_uri is fetched at most this often per process (RFC 7523 keys rarely move);
# a failed fetch is not retried for a while, so anonymous /token requests cannot make the
# IdP call the URI at will.
JWKS_URI_CACHE = timedelta(minutes=5)
JWKS_URI_FAILURE_CACHE = timedelta(seconds=30)


def fetch_jwks(client: OAuthClient) -> dict[str, Any] | None:
    """Return the JWK Set published at the client's ``jwks_uri`` (cached), or None on failure."""
    import json

    uri = client.jwks_uri
    if not uri:
        return None
    cache: dict[tuple[str, str], tuple[datetime, dict[str, Any] | None]] = (
        current_app.extensions.setdefault("idp.oidc.jwks_uri_cache", {})
    )
    key = (client.client_id, uri)
    cached = cache.get(key)
    now = db.now()
    if cached is not None:
        lifetime = JWKS_URI_CACHE if cached[1] is not None else JWKS_URI_FAILURE_CACHE
        if cached[0] <= now < cached[0] + lifetime:
            return cached[1]
    data: Any = None
    try:
        response = outbound.fetch(
            uri,
            allow_private=not client.is_self_registered,
            headers={"Accept": "application/json"},
        )
        if response.status == 200:
            data = json.loads(response.body)
    except outbound.FetchError as error:
        logger.warning("jwks_uri of client %r not fetched: %s", client.client_id, error)
    except (ValueError, RecursionError):
        data = None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("keys"), list)
        # A private key published by mistake is no key to trust.
        or any(isinstance(item, dict) and "d" in item for item in data["keys"])
    ):
        data = None
    jwks: dict[str, Any] | None = data
    cache[key] = (now, jwks)
    return jwks


def _authenticate_client_secret_basic(query_client: Any, request: Any) -> OAuthClient | None:
    # Authlib decodes the Basic credentials as UTF-8, and splits a one-word header
    # ("Authorization: Basic"), without catching the ValueError (a 500).
    # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/util.py#L26-L38
    try:
        client: OAuthClient | None = authenticate_client_secret_basic(query_client, request)
    except ValueError:
        raise InvalidClientError(
            status_code=401, description="Malformed HTTP Basic credentials."
        ) from None
    return client


def _asserted_client_id(assertion: str | None) -> str | None:
    """Return the client a client_assertion names (its unverified ``sub``), to count failures.

    RFC 7523 §3: the ``sub`` "MUST be the client_id of the OAuth client"; the form's client_id
    is optional with an assertion, so a guesser would otherwise be counted against no client.
    """
    if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
        return None
    try:
        import json

        claims = json.loads(extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, RecursionError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) and 0 < len(sub) <= 128 else None


class OpenIDProvider(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask server; every response to a client's redirect_uri is built here."""

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Any:
        """Authenticate the client, counting failed secrets per client_id (brute-force lockout).

        A locked client is refused with the error any failure gets, after the same work.
        """
        credentials = flask_request.authorization
        client_id = (
            (credentials.username if credentials else None)
            or flask_request.form.get("client_id")
            or _asserted_client_id(flask_request.form.get("client_assertion"))
        )
        key = limits.client_key(client_id) if client_id else None
        locked = key is not None and limits.is_locked(key)
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            if key is not None and not locked:
                limits.record_failure(key, "client_locked", rp=client_id)
            raise
        if locked:
            raise InvalidClientError(
                status_code=401 if "client_secret_basic" in methods else 400,
                description=f"The client cannot authenticate with methods: {methods}",
            )
        return client

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Response:
        """Send ``error`` to its validated redirect_uri, else answer it in JSON (RFC 6749 §5.2)."""
        if not error.redirect_uri:
            response: Response = super().handle_error_response(request, error)
            return response
        params = [("error", error.error)]
        if error.description:
            params.append(("error_description", error.description))
        # An oversized state is the error itself: echoing it would only amplify it.
        if error.state and len(error.state) <= grants.MAX_PARAMETER_LENGTH:
            params.append(("state", error.state))
        redirect: Response = self.handle_response(
            *self.build_authorization_response(error.redirect_uri, params)
        )
        return redirect

    def build_authorization_response(
        self, redirect_uri: str, params: list[tuple[str, str]]
    ) -> ResponseTuple:
        """Return the response carrying ``params`` to the client, with iss, in its response_mode.

        Authlib's RFC 9207 extension is not used: it only rewrites a Location, which a
        form_post response has none of, and errors rendered outside
        create_authorization_response never reach it.
        https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc9207/parameter.py#L24-L34
        """
        return build_authorization_response(
            redirect_uri,
            params,
            issuer=get_settings().issuer,
            response_mode=flask_request.values.get("response_mode", "query"),
            script_url=url_for("static", filename="continue.js"),
        )


def build_authorization_server(app: Flask) -> OpenIDProvider:
    """Create the authorization server of ``app`` with every grant and endpoint we support."""
    server = OpenIDProvider(app, query_client=storage.get_client, save_token=tokens.save_token)
    server.register_token_generator("default", tokens.TokenGenerator())
    server.register_grant(
        grants.AuthorizationCodeGrant,
        [grants.S256CodeChallenge(required=True), grants.OpenIDCode(require_nonce=False)],
    )
    server.register_grant(RefreshTokenGrant, [grants.OpenIDToken()])
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_client_auth_method("client_secret_basic", _authenticate_client_secret_basic)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    from idp.oidc.logout import EndSession

    server.register_endpoint(EndSession)
    return server


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["idp.oidc.salt"] = settings.pairwise_salt or app.config["SECRET_KEY"]
    app.extensions["idp.oidc.server"] = build_authorization_server(app)
    requesters.register(app, "oidc.authorize", client_name_of)
    from idp.oidc import logout

    logout.init_app(app)
    session_logout.get_registry(app).periodic.append(tokens.purge_expired)


def client_name_of(args: MultiDict[str, str]) -> str | None:
    """Return the name of the registered client an authorization request names, or None."""
    client_ids = args.getlist("client_id")
    if len(client_ids) != 1 or not client_ids[0].isprintable():
        return None
    client = storage.get_client(client_ids[0])
    return client.client_name if client is not None else None


def get_authorization_server() -> OpenIDProvider:
    server: OpenIDProvider = current_app.extensions["idp.oidc.server"]
    return server
