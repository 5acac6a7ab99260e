"""RFC 7662 introspection and RFC 7009 revocation: Authlib's endpoints on our storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import errors as oauth2_errors
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from idp import audit
from idp import db
from idp.models.oidc import OAuthClient
from idp.models.oidc import OAuthToken
from idp.models.token import PersonalAccessToken
from idp.oidc import grants
from idp.oidc import storage
from idp.oidc import tokens
from idp.oidc.claims import subject_for
from idp.settings import get_settings
from idp.tokens import format as pat_format
from idp.tokens import service as pat_service
from idp.tokens import usage

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
