"""Authlib grant and extension subclasses; every storage hook is one call into storage.py.

The refresh_token grant, with its rotation policy, is in ``refresh.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import grants as oidc_grants

from idp import audit
from idp import db
from idp.models.login import LoginSession
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import OAuthClient
from idp.models.oidc import hash_secret
from idp.models.user import User
from idp.oidc import storage
from idp.oidc.claims import build_id_token_claims
from idp.oidc.claims import parse_claims_request
from idp.oidc.claims import within_scope
from idp.oidc.clients import ADMIN_SCOPE
from idp.oidc.clients import AUTH_METHODS
from idp.oidc.clients import allowed_scope
from idp.sessions.service import is_login_active
from idp.settings import get_settings

AUTHORIZATION_CODE_TTL = timedelta(seconds=60)
MAX_PARAMETER_LENGTH = 2048
# A signed client assertion may carry a certificate chain in its header.
MAX_ASSERTION_LENGTH = 8192
# The width of AuthorizationCode.nonce: a longer nonce could not be stored.
MAX_NONCE_LENGTH = 512
CLIENT_AUTH_METHODS = list(AUTH_METHODS)
CONFIDENTIAL_AUTH_METHODS = [method for method in AUTH_METHODS if method != "none"]


@dataclass
class EndUser:
    """The user as Authlib sees them: a user in a login session (no session for machines)."""

    user: User
    login: LoginSession
    client: OAuthClient
    acr: str | None = None
    claims: dict[str, Any] | None = None

    def get_user_id(self) -> str:
        return self.user.subject


def _parameter_name(name: str) -> str:
    # error_description must be ASCII (RFC 6749 §5.2), and a hostile name is not echoed.
    if len(name) <= 40 and name.isascii() and name.isprintable() and '"' not in name:
        return f"'{name}'"
    return "a parameter"


def validate_token_form(form: Mapping[str, Sequence[str]]) -> None:
    """Refuse a token request that repeats, oversizes or lacks a parameter (RFC 6749 §3.2).

    Raises:
        InvalidRequestError: the request is malformed.

    """
    # RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
    for name, values in form.items():
        if len(values) > 1:
            raise InvalidRequestError(f"Repeated {_parameter_name(name)}.")
        limit = MAX_ASSERTION_LENGTH if name == "client_assertion" else MAX_PARAMETER_LENGTH
        if len(name) > MAX_PARAMETER_LENGTH or any(len(value) > limit for value in values):
            raise InvalidRequestError(f"Oversized {_parameter_name(name)}.")
    if not form.get("grant_type", [""])[0]:
        raise InvalidRequestError("Missing 'grant_type' parameter.")


def _validate_lengths(grant: grants.BaseGrant) -> None:
    for name, values in grant.request.payload.datalist.items():
        if any(len(value) > MAX_PARAMETER_LENGTH for value in values):
            # The name is the client's input too: quote it only when short and plain.
            if len(name) > 64 or not name.isascii() or not name.isidentifier():
                raise InvalidRequestError("A parameter is too long.")
            raise InvalidRequestError(f"Parameter '{name}' is too long.")


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    RESPONSE_MODES = ("query", "form_post")

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: OAuthClient) -> str:
        requested: str | None = request.payload.redirect_uri
        if requested:
            # Authlib quotes the URI in the description, which must be printable ASCII
            # without '"' or '\\' (RFC 6749 §5.2): a hostile URI would be a 500.
            # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/grants/base.py#L118-L124
            if not client.check_redirect_uri(requested):
                raise InvalidRequestError("The 'redirect_uri' is not registered for this client.")
            return requested
        default = client.get_default_redirect_uri()
        if not default:
            raise InvalidRequestError("Missing 'redirect_uri' in request.")
        return default

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        # From here on the client and redirect_uri are validated: errors may redirect.
        try:
            _validate_lengths(self)
            if len(self.request.payload.data.get("nonce") or "") > MAX_NONCE_LENGTH:
                raise InvalidRequestError("Parameter 'nonce' is too long.")
            mode = self.request.payload.data.get("response_mode", "query")
            if mode not in self.RESPONSE_MODES:
                raise InvalidRequestError("Unsupported 'response_mode'.")
            try:
                parse_claims_request(self.request.payload.data.get("claims"))
            except (ValueError, RecursionError):  # json.loads recurses on nested arrays
                raise InvalidRequestError("Invalid 'claims' parameter.") from None
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise
        return redirect_uri

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        _, _, headers = super().create_authorization_response(redirect_uri, grant_user)
        # Authlib appended code (and state) to the redirect_uri's own query: take them back,
        # for the server to send them with iss, by query or form_post.
        # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/grants/authorization_code.py#L158-L161
        query = parse_qsl(urlsplit(dict(headers)["Location"]).query, keep_blank_values=True)
        params = query[-2:] if self.request.payload.state else query[-1:]
        return self.server.build_authorization_response(redirect_uri, params)

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(32)

    def save_authorization_code(self, code: str, request: Any) -> None:
        end_user: EndUser = request.user
        payload = request.payload
        now = db.now()
        storage.add_code(
            AuthorizationCode(
                code_hash=hash_secret(code),
                client_id=request.client.get_client_id(),
                user_id=end_user.user.id,
                login_session_id=end_user.login.id,
                redirect_uri=payload.redirect_uri or request.client.get_default_redirect_uri(),
                response_type=payload.response_type,
                scope=allowed_scope(
                    request.client, payload.scope or "", user_is_admin=end_user.user.is_admin
                ),
                nonce=payload.data.get("nonce"),
                code_challenge=payload.data.get("code_challenge"),
                code_challenge_method=payload.data.get("code_challenge_method"),
                # The client's registered scope bounds what it may name (OIDC Core §5.5).
                claims=within_scope(
                    parse_claims_request(payload.data.get("claims")), request.client.scope
                ),
                acr=end_user.acr,
                created_at=now,
                expires_at=now + AUTHORIZATION_CODE_TTL,
            )
        )
        db.get_session().commit()

    def query_authorization_code(self, code: str, client: OAuthClient) -> Any:
        found = storage.get_code(code, client.get_client_id())
        if found is None:
            return None
        now = db.now()
        if found.used_at is not None:
            _revoke_replayed_code(found, now)
            return None
        if now >= found.expires_at or not is_login_active(found.login, now):
            return None
        return found

    def save_token(self, token: dict[str, Any]) -> None:
        # The code is spent in the transaction that stores its tokens: Authlib would spend
        # it only after save_token committed, and a concurrent redemption could win twice.
        # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/grants/authorization_code.py#L281-L282
        code: AuthorizationCode = self.request.authorization_code
        now = db.now()
        if not storage.claim_code(code.id, now):
            db.get_session().rollback()
            _revoke_replayed_code(code, now)
            raise InvalidGrantError("Invalid 'code' in request.")
        self.server.save_token(token, self.request)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Do nothing: save_token already spent the code."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> EndUser:
        return EndUser(
            user=authorization_code.user,
            login=authorization_code.login,
            client=self.request.client,
            acr=authorization_code.acr,
            claims=authorization_code.claims,
        )


def _revoke_replayed_code(code: AuthorizationCode, now: datetime) -> None:
    # RFC 6749 §4.1.2: "If an authorization code is used more than once, the authorization
    # server [...] SHOULD revoke (when possible) all tokens previously issued based on that
    # authorization code."
    revoked = storage.revoke_tokens_of_code(code.id, now)
    audit.record(
        "authorization_code_replayed",
        user_id=code.user_id,
        sid=code.login.sid,
        rp=code.client_id,
        tokens_revoked=revoked,
    )
    db.get_session().commit()


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only; required for public clients (RFC 7636, OAuth 2.0 Security BCP)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        try:
            if grant.client.is_public and not grant.request.payload.data.get("code_challenge"):
                raise InvalidRequestError("Public clients must use PKCE ('code_challenge').")
            super().validate_code_challenge(grant, redirect_uri)
        except InvalidRequestError as error:
            error.redirect_uri = redirect_uri
            raise

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> Any:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> Any:
        return authorization_code.code_challenge_method


class _IdTokenMixin:
    """ID tokens signed with the client's algorithm by the active key (OIDC Core §3.1.3.6)."""

    def get_client_algorithm(self, client: OAuthClient) -> str:
        return client.id_token_signed_response_alg or "RS256"

    def resolve_client_private_key(self, client: OAuthClient) -> Any:
        from idp.keys.store import get_key_store

        key = get_key_store().signing_key(self.get_client_algorithm(client), db.now())
        return key.jose_key

    def get_encode_header(self, client: OAuthClient) -> dict[str, Any]:
        from idp.keys.store import get_key_store

        alg = self.get_client_algorithm(client)
        key = get_key_store().signing_key(alg, db.now())
        return {"alg": alg, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: OAuthClient) -> dict[str, Any]:
        now = int(db.now().timestamp())
        ttl = get_settings().id_token_ttl
        return {
            "iss": get_settings().issuer,
            "aud": [client.get_client_id()],
            "iat": now,
            "exp": now + int(ttl.total_seconds()),
        }

    def generate_user_info(self, user: EndUser, scope: str) -> dict[str, Any]:
        requested = (user.claims or {}).get("id_token")
        return build_id_token_claims(
            user=user.user,
            login=user.login,
            client=user.client,
            scope=scope,
            requested=requested,
            acr=user.acr,
        )


class OpenIDCode(_IdTokenMixin, oidc_grants.OpenIDCode):  # type: ignore[misc]
    """The ``openid`` scope on the code grant: nonce, prompt, and an ID token."""

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return storage.nonce_was_used(request.payload.client_id, nonce)


class OpenIDToken(_IdTokenMixin, oidc_grants.OpenIDToken):  # type: ignore[misc]
    """A fresh ID token on refresh (OIDC Core §12.2), without ``nonce``."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS

    def validate_requested_scope(self) -> None:
        # A client gets no scope it was not registered for (``admin`` guards the admin API).
        client: OAuthClient = self.request.client
        requested = set((self.request.payload.scope or "").split())
        if not requested <= set(client.scope.split()):
            raise InvalidScopeError()
        # Only a service account registered with it gets ``admin`` without a user.
        if ADMIN_SCOPE in requested and not client.is_service_account:
            raise InvalidScopeError()
