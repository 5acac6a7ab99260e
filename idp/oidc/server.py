"""Build the Authlib authorization server: grants, token generator, endpoints, client auth."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import errors as oauth2_errors
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask
from flask import Response
from flask import current_app
from flask import request as flask_request
from flask import url_for
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.datastructures import MultiDict

from idp import audit
from idp import db
from idp import limits
from idp import outbound
from idp.models.oidc import OAuthClient
from idp.models.oidc import OAuthToken
from idp.models.token import PersonalAccessToken
from idp.oidc import grants
from idp.oidc import storage
from idp.oidc import tokens
from idp.oidc.claims import subject_for
from idp.oidc.refresh import RefreshTokenGrant
from idp.oidc.responses import ResponseTuple
from idp.oidc.responses import build_authorization_response
from idp.replay import remember_once
from idp.sessions import logout as session_logout
from idp.sessions import requesters
from idp.settings import Settings
from idp.settings import get_settings
from idp.tokens import format as pat_format
from idp.tokens import service as pat_service
from idp.tokens import usage

logger = logging.getLogger(__name__)

# RFC 7523 §3: assertions must be short-lived; we refuse any promising to live longer.
MAX_ASSERTION_LIFETIME = timedelta(minutes=10)

# Longer strings are no token of ours; refuse them before hashing or parsing.
MAX_TOKEN_LENGTH = 8192


def _issuer() -> str:
    return get_settings().issuer


class UnsupportedTokenTypeError(OAuth2Error):  # type: ignore[misc]
    """RFC 7009 §2.2.1 ``unsupported_token_type``: a 400 like every RFC 6749 §5.2 error."""

    # Authlib's own class derives from ForbiddenError and answers 401.
    # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/errors.py#L221-L222
    error = "unsupported_token_type"
    status_code = 400


def _check_params(endpoint: Any, request: Any, client: OAuthClient) -> None:
    try:
        endpoint.check_params(request, client)
    except oauth2_errors.UnsupportedTokenTypeError:
        raise UnsupportedTokenTypeError() from None


@dataclass(frozen=True)
class FoundToken:
    """A stored issuance and which of its two tokens the caller presented."""

    row: OAuthToken
    is_refresh: bool


def _query_token(token_string: str) -> FoundToken | None:
    # RFC 7009 §2.1 and RFC 7662 §2.1: a wrong hint must not hide the token, so the shape
    # decides instead (access tokens are JWTs, refresh tokens opaque and dot-free).
    if not token_string or len(token_string) > MAX_TOKEN_LENGTH:
        return None
    if token_string.count(".") == 2:
        row = tokens.verify_access_token(token_string)
        return FoundToken(row, is_refresh=False) if row is not None else None
    row = storage.get_token_by_refresh_token(token_string)
    return FoundToken(row, is_refresh=True) if row is not None else None


@dataclass(frozen=True)
class FoundPat:
    """A live personal access token presented for introspection."""

    row: PersonalAccessToken


def _record_introspection(token: FoundToken | FoundPat, client_id: str) -> None:
    kind: str
    token_id: str
    user_id: int | None
    if isinstance(token, FoundPat):
        kind, token_id, user_id = usage.PAT, str(token.row.id), token.row.user_id
    elif token.is_refresh:
        kind, token_id, user_id = usage.REFRESH, token.row.family_id, token.row.user_id
    else:
        kind, token_id, user_id = usage.ACCESS, str(token.row.id), token.row.user_id
    usage.record_use(kind, token_id, user_id=user_id, resource=client_id, introspected=True)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: a confidential client asks about its own tokens, a resource server about any.

    Personal access tokens belong to no client: only resource servers learn about them.
    """

    CLIENT_AUTH_METHODS = grants.CONFIDENTIAL_AUTH_METHODS

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> FoundToken | FoundPat | None:
        if pat_format.is_personal_access_token(token_string):
            pat = pat_service.find_active_token(token_string)
            return FoundPat(pat) if pat is not None else None
        return _query_token(token_string)

    def check_params(self, request: Any, client: OAuthClient) -> None:
        _check_params(super(), request, client)

    def check_permission(
        self, token: FoundToken | FoundPat, client: OAuthClient, request: Any
    ) -> bool:
        # A client learns only about its own tokens; a resource server (an API the operator
        # registered as one) about any token presented to it. Others get {"active": false}.
        if isinstance(token, FoundPat):
            return client.is_resource_server
        return client.is_resource_server or token.row.client_id == client.get_client_id()

    def create_endpoint_response(self, request: Any) -> tuple[int, dict[str, Any], Any]:
        # Authlib's, plus a usage record: the introspecting client is the "resource".
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        body = self.create_introspection_payload(token)
        if body.get("active") and token is not None:
            _record_introspection(token, client.get_client_id())
        return 200, body, default_json_headers

    def create_introspection_payload(self, token: FoundToken | FoundPat | None) -> dict[str, Any]:
        if isinstance(token, FoundPat):
            return self.introspect_pat(token.row)
        # RFC 7662 §2.2: inactive, unknown and foreign tokens all get only {"active": false}.
        if token is None or not tokens.is_token_active(
            token.row, db.now(), access=not token.is_refresh
        ):
            return {"active": False}
        client = storage.get_client(token.row.client_id)
        if client is None:  # disabled since: its tokens are dead too
            return {"active": False}
        return self.introspect_token(token, client)

    def introspect_pat(self, row: PersonalAccessToken) -> dict[str, Any]:
        # The holder is not the one asking: the resource server's address is no use of note.
        pat_service.note_use(row, None)
        payload: dict[str, Any] = {
            "active": True,
            "token_type": "personal_access_token",
            "scope": " ".join(row.scopes),
            "sub": subject_for(row.user, None),
            "iat": int(row.created_at.timestamp()),
            "iss": _issuer(),
        }
        if row.expires_at is not None:
            payload["exp"] = int(row.expires_at.timestamp())
        return payload

    def introspect_token(self, token: FoundToken, client: OAuthClient) -> dict[str, Any]:
        row = token.row
        expires = row.refresh_expires_at if token.is_refresh else row.access_expires_at
        payload: dict[str, Any] = {
            "active": True,
            "scope": row.scope,
            "client_id": row.client_id,
            "token_type": "refresh_token" if token.is_refresh else "Bearer",
            "exp": int(expires.timestamp()) if expires else None,
            "iat": int(row.issued_at.timestamp()),
            "iss": _issuer(),
            "jti": None if token.is_refresh else row.jti,
        }
        # The sub and aud the access token carries; no username: the e-mail address is no
        # business of a resource server whose token lacks the email scope.
        payload["aud"] = row.client_id
        payload["sub"] = row.client_id
        if row.user is not None:
            payload["sub"] = subject_for(row.user, client)
        if row.login is not None:
            payload["sid"] = row.login.sid
        return {key: value for key, value in payload.items() if value is not None}


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoking a refresh token revokes its whole family."""

    CLIENT_AUTH_METHODS = grants.CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> FoundToken | None:
        return _query_token(token_string)

    def check_params(self, request: Any, client: OAuthClient) -> None:
        _check_params(super(), request, client)

    def authenticate_token(self, request: Any, client: OAuthClient) -> FoundToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009 §2.1: another client's token is not revoked, and the answer is still 200
        # so that nobody learns whether it exists.
        if token is not None and token.row.client_id == client.get_client_id():
            return token
        return None

    def revoke_token(self, token: FoundToken, request: Any) -> None:
        row = token.row
        now = db.now()
        if token.is_refresh:
            storage.revoke_family(row.family_id, now)
        elif row.revoked_at is None:
            row.revoked_at = now
        audit.record(
            "token_revoked",
            user_id=row.user_id,
            sid=row.login.sid if row.login else None,
            rp=row.client_id,
            kind="refresh_token" if token.is_refresh else "access_token",
        )
        db.get_session().commit()


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
        issuer = _issuer()
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


class OpenIDProvider(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask server; every response to a client's redirect_uri is built here."""

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Any:
        """Authenticate the client, counting failed secrets per client_id (brute-force lockout).

        A locked client is refused with the error any failure gets, after the same work.
        """
        credentials = flask_request.authorization
        client_id = (credentials.username if credentials else None) or flask_request.form.get(
            "client_id"
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
            issuer=_issuer(),
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
