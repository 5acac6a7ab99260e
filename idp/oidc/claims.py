"""ID token and userinfo claims from a login session and the attribute table (OIDC Core §2, §5)."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from flask import current_app

from idp.attributes import BY_CLAIM
from idp.attributes import claims_by_name
from idp.attributes import claims_for_scopes
from idp.models.login import LoginSession
from idp.models.oidc import OAuthClient
from idp.models.user import User

# Claims the `claims` request parameter may ask for (OIDC Core §5.5); others are ignored.
REQUESTABLE = set(BY_CLAIM) | {"auth_time", "acr"}


def sector_of(client: OAuthClient) -> str:
    """Return the pairwise sector: the host of the client's redirect URIs (OIDC Core §8.1)."""
    hosts = sorted({urlsplit(uri).hostname or "" for uri in client.redirect_uris})
    return hosts[0] if len(hosts) == 1 else client.client_id


def subject_for(user: User, client: OAuthClient | None) -> str:
    """Return ``sub``: the user's stable subject, or a pairwise one for pairwise clients."""
    if client is None or client.subject_type != "pairwise":
        return user.subject
    salt: str = current_app.extensions["idp.oidc.salt"]
    digest = hashlib.sha256(f"{sector_of(client)}|{user.subject}|{salt}".encode()).hexdigest()
    return digest


def parse_claims_request(raw: str | None) -> dict[str, list[str]] | None:
    """Parse the ``claims`` parameter into ``{"userinfo": [...], "id_token": [...]}``.

    Raises:
        ValueError: not a JSON object of the shape OIDC Core §5.5 gives.

    """
    if not raw:
        return None
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("claims must be a JSON object")
    result: dict[str, list[str]] = {}
    for target in ("userinfo", "id_token"):
        members = data.get(target)
        if members is None:
            continue
        if not isinstance(members, dict):
            raise ValueError(f"claims.{target} must be a JSON object")
        result[target] = sorted(name for name in members if name in REQUESTABLE)
    return result


def scopes_of(claims_request: dict[str, list[str]] | None) -> set[str]:
    """Return the scopes that release the claims a ``claims`` request names."""
    names = {name for names in (claims_request or {}).values() for name in names}
    return {BY_CLAIM[name].scope for name in names if name in BY_CLAIM}


def within_scope(
    claims_request: dict[str, list[str]] | None, scope: str
) -> dict[str, list[str]] | None:
    """Drop the requested claims whose scope is not in ``scope`` (consent is per scope)."""
    if claims_request is None:
        return None
    allowed = set(scope.split())
    return {
        target: [name for name in names if name not in BY_CLAIM or BY_CLAIM[name].scope in allowed]
        for target, names in claims_request.items()
    }


def build_userinfo(
    *,
    user: User,
    scope: str,
    client: OAuthClient | None,
    requested: list[str] | None = None,
) -> dict[str, Any]:
    """Return the userinfo claims for a token's scope plus requested claims (OIDC Core §5.3)."""
    scopes = set(scope.split())
    claims: dict[str, Any] = {"sub": subject_for(user, client)}
    claims.update(claims_for_scopes(user, scopes))
    if requested:
        claims.update(claims_by_name(user, set(requested)))
    return claims


def build_id_token_claims(
    *,
    user: User,
    login: LoginSession,
    client: OAuthClient,
    scope: str,
    requested: list[str] | None = None,
    acr: str | None = None,
) -> dict[str, Any]:
    """Return the end-user claims of an ID token (the JOSE layer adds iss/aud/exp/iat/nonce)."""
    claims = build_userinfo(user=user, scope=scope, client=client, requested=requested)
    claims["sid"] = login.sid
    claims["auth_time"] = int(login.auth_time.timestamp())
    claims["azp"] = client.client_id
    if login.amr:
        claims["amr"] = list(login.amr)
    if acr or login.acr:
        claims["acr"] = acr or login.acr
    return claims
