"""JWT access tokens (RFC 9068), opaque refresh tokens, and their persistence and status."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import cast

from authlib.oauth2.rfc6750 import BearerTokenGenerator
from joserfc import jwt
from joserfc.errors import DecodeError
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.registry import JWS_HEADER_REGISTRY
from joserfc.registry import check_registry_header

from idp import audit
from idp import db
from idp.keys.store import get_key_store
from idp.models.oidc import OAuthClient
from idp.models.oidc import OAuthToken
from idp.models.oidc import hash_secret
from idp.models.token import PersonalAccessToken
from idp.models.token import TokenUsage
from idp.models.user import User
from idp.oidc import storage
from idp.oidc.claims import subject_for
from idp.oidc.clients import ADMIN_SCOPE
from idp.sessions import logout as session_logout
from idp.sessions.service import is_login_active
from idp.settings import get_settings
from idp.tokens import format as pat_format
from idp.tokens import monitor
from idp.tokens import service as pat_service
from idp.tokens import usage

ACCESS_TOKEN_ALG = "RS256"  # noqa: S105 (an algorithm name)


class TokenGenerator(BearerTokenGenerator):  # type: ignore[misc]
    """Mint RFC 9068 access tokens; a refresh token only for ``offline_access``."""

    def __init__(self) -> None:
        super().__init__(self.access_token, self.refresh_token, self.expires_in)

    def expires_in(self, client: OAuthClient, grant_type: str) -> int:
        return int(get_settings().access_token_ttl.total_seconds())

    def access_token(self, client: OAuthClient, grant_type: str, user: Any, scope: str) -> str:
        now = db.now()
        key = get_key_store().signing_key(ACCESS_TOKEN_ALG, now)
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": get_settings().issuer,
            "aud": client.get_client_id(),
            "client_id": client.get_client_id(),
            "iat": issued,
            "exp": issued + self.expires_in(client, grant_type),
            "jti": secrets.token_urlsafe(24),
        }
        if scope:
            claims["scope"] = scope
        if user is None:
            claims["sub"] = client.get_client_id()
        else:
            claims["sub"] = subject_for(user.user, client)
            claims["sid"] = user.login.sid
            claims["auth_time"] = int(user.login.auth_time.timestamp())
            if user.acr or user.login.acr:
                claims["acr"] = user.acr or user.login.acr
            if user.login.amr:
                claims["amr"] = list(user.login.amr)
        header = {"alg": ACCESS_TOKEN_ALG, "typ": "at+jwt", "kid": key.kid}

        token: str = jwt.encode(header, claims, key.jose_key)
        return token

    def refresh_token(self, client: OAuthClient, grant_type: str, user: Any, scope: str) -> str:
        return secrets.token_urlsafe(32)

    def generate(
        self,
        grant_type: str,
        client: OAuthClient,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # A rotated refresh token keeps the family's scope (RFC 6749 §6), so a refresh asking
        # for a narrower scope without offline_access still gets its successor.
        wants_refresh = (
            include_refresh_token
            and user is not None
            and ("offline_access" in (scope or "").split() or grant_type == "refresh_token")
            and client.check_grant_type("refresh_token")
        )
        token: dict[str, Any] = super().generate(
            grant_type,
            client,
            user=user,
            scope=scope,
            expires_in=expires_in,
            include_refresh_token=wants_refresh,
        )
        return token


def _unverified_claims(access_token: str) -> dict[str, Any]:
    # Our own token, minted a moment ago in this process: reading it needs no verification.
    payload = access_token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def save_token(token: dict[str, Any], request: Any) -> None:
    """Persist an issuance: the access token's ``jti`` and the refresh token's hash; commit."""
    claims = _unverified_claims(token["access_token"])
    end_user = request.user
    parent: OAuthToken | None = getattr(request, "refresh_token", None)
    code = getattr(request, "authorization_code", None)
    login = end_user.login if end_user is not None else None
    now = db.now()
    row = OAuthToken(
        jti=claims["jti"],
        refresh_token_hash=hash_secret(token["refresh_token"])
        if "refresh_token" in token
        else None,
        client_id=request.client.get_client_id(),
        user_id=end_user.user.id if end_user is not None else None,
        login_session_id=login.id if login is not None else None,
        authorization_code_id=code.id
        if code is not None
        else (parent.authorization_code_id if parent else None),
        family_id=parent.family_id if parent is not None else secrets.token_hex(16),
        parent_id=parent.id if parent is not None else None,
        scope=token.get("scope", claims.get("scope", "")),
        claims=end_user.claims if end_user is not None else None,
        issued_at=now,
        access_expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        refresh_expires_at=login.expires_at
        if login is not None and "refresh_token" in token
        else None,
    )
    storage.add_token(row)
    if login is not None:
        # The client now holds tokens of this session: it hears when the session ends.
        session_logout.join(login, "oidc", row.client_id)
    audit.record(
        "token_issued",
        user_id=row.user_id,
        sid=login.sid if login is not None else None,
        rp=row.client_id,
        grant_type=request.payload.grant_type,
        scope=row.scope,
        refresh=row.refresh_token_hash is not None,
    )
    db.get_session().commit()


def validate_jws_header(value: str) -> None:
    """Raise JoseError unless the compact JWS's protected header is an object of typed members.

    joserfc reads the names listed in ``crit`` before it checks that ``crit`` is a list of
    strings, so ``"crit": 1`` escapes as a TypeError, not a JoseError (check_crit_header in
    https://github.com/authlib/joserfc/blob/1.8.0/src/joserfc/registry.py). Checking the
    registry's types first turns every malformed header into the library's own error.
    """
    segment = value.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        raise DecodeError("The JWS header is not base64url-encoded JSON.") from None
    if not isinstance(header, dict):
        raise DecodeError("The JWS header is not a JSON object.")
    check_registry_header(JWS_HEADER_REGISTRY, header, check_required=False)


def verify_access_token(access_token: str) -> OAuthToken | None:
    """Return the stored issuance of a valid, live access token, else None.

    Valid means: our signature with a published key, our issuer, not expired, not revoked,
    and its login session (if any) still active.
    """
    if access_token.count(".") != 2 or len(access_token) > 8192:
        return None
    now = db.now()
    keys = KeySet.import_key_set(cast(Any, get_key_store().public_jwks(now)))
    try:
        validate_jws_header(access_token)
        decoded = jwt.decode(access_token, keys, algorithms=[ACCESS_TOKEN_ALG])
    except (JoseError, ValueError):
        return None
    if decoded.header.get("typ") != "at+jwt":
        return None
    claims = decoded.claims
    if claims.get("iss") != get_settings().issuer or not isinstance(claims.get("jti"), str):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or now.timestamp() >= exp:
        return None
    row = storage.get_token_by_jti(claims["jti"])
    if row is None or not is_token_active(row, now, access=True):
        return None
    return row


@dataclass(frozen=True)
class BearerToken:
    """A live token presented to one of the IdP's own APIs.

    An access token and its enabled client, or a personal access token (``client`` None).
    """

    scope: str
    user: User | None
    client: OAuthClient | None
    row: OAuthToken | None = None
    pat: PersonalAccessToken | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    @property
    def may_administer(self) -> bool:
        """Whether the bearer may still use the ``admin`` scope it carries.

        An admin user who has not been demoted, or a service account still registered with it.
        """
        if self.user is not None:
            return self.user.is_admin and not self.user.is_disabled
        return (
            self.client is not None
            and self.client.is_service_account
            and ADMIN_SCOPE in self.client.scope.split()
        )


def authenticate_bearer(
    access_token: str, ip: str | None = None, *, resource: str
) -> BearerToken | None:
    """Return the live token presented, as userinfo and the admin API decide, or None.

    A personal access token is recognised by its prefix (and checksum, before any query);
    its use from ``ip`` is noted. An access token is live when it has our signature, issuer,
    ``typ`` at+jwt, is not expired or revoked, its session not ended, its client not disabled
    or deleted.
    """
    if pat_format.is_personal_access_token(access_token):
        pat = pat_service.authenticate(access_token, ip, resource=resource)
        if pat is None:
            return None
        return BearerToken(" ".join(pat.scopes), pat.user, None, pat=pat)
    row = verify_access_token(access_token)
    if row is None:
        return None
    client = storage.get_client(row.client_id)
    if client is None:
        return None
    family = row.family_id
    use = monitor.Use(usage.ACCESS, str(row.id), row.user, None, lambda: _revoke_family(family))
    if monitor.observe(use, resource=resource):
        return None
    return BearerToken(row.scope, row.user, client, row=row)


def _revoke_family(family_id: str) -> None:
    storage.revoke_family(family_id, db.now())
    db.get_session().commit()


def is_token_active(row: OAuthToken, now: datetime, *, access: bool) -> bool:
    """Return whether the access (or refresh) side of an issuance is usable now."""
    if row.revoked_at is not None:
        return False
    expires = row.access_expires_at if access else row.refresh_expires_at
    if expires is None or now >= expires:
        return False
    if not access and row.rotated_at is not None:
        return False
    return row.login is None or is_login_active(row.login, now)


# Usage rows shown per login session on /account/sessions (its apps' tokens, latest first).
SESSION_USAGE_ROWS = 10


@dataclass(frozen=True)
class SessionTokenUse:
    """One usage row of a token an app got in a login session, and that app's client_id."""

    client_id: str
    use: TokenUsage


def recent_usage_of_logins(login_session_ids: list[int]) -> dict[int, list[SessionTokenUse]]:
    """Return, per login session, the latest use of the access and refresh tokens issued in it.

    Refresh tokens count per rotation family (as the rules see them), access tokens one by one.
    """
    issued = storage.list_issuances_of_logins(login_session_ids)
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    for login_id, issuance_id, family_id, client_id in issued:
        owner[(usage.ACCESS, str(issuance_id))] = (login_id, client_id)
        owner[(usage.REFRESH, family_id)] = (login_id, client_id)
    keys: dict[str, list[str]] = {usage.ACCESS: [], usage.REFRESH: []}
    for kind, key in owner:
        keys[kind].append(key)
    found: dict[int, list[SessionTokenUse]] = {login_id: [] for login_id in login_session_ids}
    limit = SESSION_USAGE_ROWS * max(len(login_session_ids), 1)
    for row in usage.usage_of(keys, limit=limit):
        login_id, client_id = owner[(row.token_kind, row.token_id)]
        if len(found[login_id]) < SESSION_USAGE_ROWS:
            found[login_id].append(SessionTokenUse(client_id, row))
    return found


def purge_expired() -> dict[str, int]:
    """Delete a batch of long-expired codes and tokens; audit."""
    before = db.now() - db.PURGE_AFTER
    codes = storage.purge_codes(before)
    issued = storage.purge_tokens(before)
    if codes or issued:
        audit.record("expired_rows_purged", authorization_codes=codes, tokens=issued)
    db.get_session().commit()
    return {"authorization_codes": codes, "tokens": issued}
