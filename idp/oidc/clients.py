"""Client registration shared by ``idp client add`` and RFC 7591 dynamic registration."""

from __future__ import annotations

import json
import re
import secrets
import warnings
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from idp import audit
from idp import db
from idp import outbound
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.models.oidc import OAuthClient
from idp.models.oidc import hash_secret
from idp.oidc import storage
from idp.uris import is_loopback

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
ID_TOKEN_ALGS = ("RS256", "ES256")
DEFAULT_SCOPE = "openid profile email groups offline_access"
# The admin API's scope: only admin users (code flow) and service accounts registered with it.
ADMIN_SCOPE = "admin"
MIN_SECRET_LENGTH = 32
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")


def validate_redirect_uri(uri: str, *, what: str = "redirect URI") -> str:
    """Refuse URIs a code must never be sent to (OAuth 2.0 Security BCP §4.1).

    Raises:
        InvalidInputError: not absolute, has a fragment, a script scheme, or plain http to a
            non-loopback host.

    """
    parts = urlsplit(uri)
    if not parts.scheme or len(uri) > 2000:
        raise InvalidInputError(f"{what} must be an absolute URI: {uri!r}")
    if parts.fragment or "#" in uri:
        raise InvalidInputError(f"{what} must not have a fragment: {uri!r}")
    scheme = parts.scheme.lower()
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise InvalidInputError(f"{what} has a forbidden scheme: {uri!r}")
    if scheme in ("http", "https") and not parts.hostname:
        raise InvalidInputError(f"{what} has no host: {uri!r}")
    if scheme == "http" and not is_loopback(parts.hostname):
        raise InvalidInputError(f"{what} must use https unless it is on loopback: {uri!r}")
    return uri


def _validate_http_uri(uri: str, what: str) -> str:
    validate_redirect_uri(uri, what=what)
    if urlsplit(uri).scheme not in ("http", "https"):
        raise InvalidInputError(f"{what} must be http(s): {uri!r}")
    return uri


def _validate_fetched_uri(uri: str, what: str, self_registered: bool) -> None:
    """Refuse a URI the IdP will call unless the operator registered it or it is public https.

    The demo apps' loopback URIs stay allowed for the operator; a registrant
    must not make the IdP call its internal network (SSRF).
    """
    _validate_http_uri(uri, what)
    if not self_registered:
        return
    try:
        outbound.validate_public_url(uri)
    except outbound.FetchError as error:
        raise InvalidInputError(f"{what} must be https on a public address: {error}") from None


def load_jwks(text: str) -> dict[str, Any]:
    """Parse a client's public JWK Set: every key must be able to verify a signature.

    Raises:
        InvalidInputError: not a JWK Set of usable public keys.

    """
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidInputError("the JWKS is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise InvalidInputError('the JWKS must be an object with a non-empty "keys" list')
    for number, key in enumerate(data["keys"], start=1):
        if not isinstance(key, dict) or "kty" not in key:
            raise InvalidInputError("every JWK needs a kty")
        if "d" in key:
            raise InvalidInputError("the JWKS holds a private key: register public keys only")
        if key["kty"] == "oct":
            raise InvalidInputError("the JWKS must hold public keys, not shared secrets")
        # A key joserfc cannot import (missing n/e, x/y) would make every assertion fail;
        # it also warns about weak keys: refuse them rather than accept them quietly.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                JWKRegistry.import_key(key)
            except (JoseError, ValueError, TypeError, Warning):
                raise InvalidInputError(
                    f"JWK #{number} of the JWKS is not a usable public key"
                ) from None
    return data


@dataclass
class ClientSpec:
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 (a method name)
    is_trusted: bool = False
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    id_token_signed_response_alg: str = "RS256"  # noqa: S105 (an algorithm name)
    subject_type: str = "public"
    client_id: str | None = None
    client_secret: str | None = None
    scope: str = DEFAULT_SCOPE
    grant_types: list[str] | None = None
    is_resource_server: bool = False
    # A machine client: client_credentials only, for exactly ``scope``; no redirect URIs.
    is_service_account: bool = False
    # Registered through RFC 7591 by anyone holding the initial access token, not the operator.
    self_registered: bool = False


def register_client(spec: ClientSpec) -> tuple[OAuthClient, str | None]:
    """Validate and store a client; commit. Return it and its secret (None for public).

    Raises:
        InvalidInputError: a field is malformed or the combination makes no sense.
        ConflictError: the client_id is taken.

    """
    name = spec.client_name.strip()
    if not name or len(name) > 200:
        raise InvalidInputError("the client name must be 1 to 200 characters")
    if spec.is_service_account and spec.redirect_uris:
        raise InvalidInputError("a service account has no redirect URIs")
    if not spec.redirect_uris and not spec.is_service_account:
        raise InvalidInputError("at least one redirect URI is required")
    scope = " ".join(validate_scopes(spec.scope.split()))
    redirect_uris = [validate_redirect_uri(uri) for uri in dict.fromkeys(spec.redirect_uris)]
    method = spec.token_endpoint_auth_method
    if method not in AUTH_METHODS:
        raise InvalidInputError(f"unknown auth method {method!r}")
    if spec.id_token_signed_response_alg not in ID_TOKEN_ALGS:
        raise InvalidInputError(
            f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}"
        )
    if spec.subject_type not in ("public", "pairwise"):
        raise InvalidInputError("subject_type must be public or pairwise")
    if method == "private_key_jwt" and not (spec.jwks or spec.jwks_uri):
        raise InvalidInputError("private_key_jwt needs the client's keys (--jwks or --jwks-uri)")
    if spec.jwks_uri:
        _validate_fetched_uri(spec.jwks_uri, "jwks_uri", spec.self_registered)
    if spec.jwks and spec.jwks_uri:
        raise InvalidInputError("give either jwks or jwks_uri, not both")
    post_logout = [
        _validate_http_uri(uri, "post-logout redirect URI")
        for uri in dict.fromkeys(spec.post_logout_redirect_uris)
    ]
    if spec.backchannel_logout_uri:
        _validate_fetched_uri(
            spec.backchannel_logout_uri, "back-channel logout URI", spec.self_registered
        )
    if spec.frontchannel_logout_uri:
        _validate_http_uri(spec.frontchannel_logout_uri, "front-channel logout URI")
    client_id = secrets.token_urlsafe(16) if spec.client_id is None else spec.client_id
    if not 1 <= len(client_id) <= 128 or not client_id.isprintable() or " " in client_id:
        raise InvalidInputError("the client_id must be 1 to 128 printable characters, no spaces")
    if storage.client_id_exists(client_id):
        raise ConflictError(f"a client with client_id {client_id!r} already exists")
    secret: str | None = None
    if method in ("client_secret_basic", "client_secret_post"):
        secret = spec.client_secret or secrets.token_urlsafe(32)
        if len(secret) < MIN_SECRET_LENGTH:
            raise InvalidInputError(
                f"the client secret must be at least {MIN_SECRET_LENGTH} characters"
            )
    elif spec.client_secret:
        raise InvalidInputError(f"a {method} client has no secret")
    grant_types = spec.grant_types or (
        ["authorization_code", "refresh_token"]
        + (["client_credentials"] if method != "none" else [])
    )
    if spec.is_service_account:
        if method == "none":
            raise InvalidInputError("a service account must be a confidential client")
        grant_types = ["client_credentials"]
    if method == "none" and "client_credentials" in grant_types:
        raise InvalidInputError("a public client cannot use client_credentials")
    client = OAuthClient(
        client_id=client_id,
        client_secret_hash=hash_secret(secret) if secret else None,
        client_name=name,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        backchannel_logout_uri=spec.backchannel_logout_uri,
        frontchannel_logout_uri=spec.frontchannel_logout_uri,
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=[] if spec.is_service_account else ["code"],
        scope=scope,
        jwks=spec.jwks,
        jwks_uri=spec.jwks_uri,
        id_token_signed_response_alg=spec.id_token_signed_response_alg,
        subject_type=spec.subject_type,
        is_trusted=spec.is_trusted,
        is_resource_server=spec.is_resource_server,
        is_service_account=spec.is_service_account,
        is_self_registered=spec.self_registered,
        is_disabled=False,
        created_at=db.now(),
    )
    storage.add_client(client)
    audit.record(
        "client_registered",
        rp=client_id,
        auth_method=method,
        trusted=spec.is_trusted,
        resource_server=spec.is_resource_server,
        service_account=spec.is_service_account,
        self_registered=spec.self_registered,
        scope=scope,
    )
    db.get_session().commit()
    return client, secret


def validate_scopes(scopes: list[str]) -> list[str]:
    """Return the scope names without repeats, each a valid RFC 6749 §3.3 scope-token.

    Raises:
        InvalidInputError: a name is not a scope-token.

    """
    for name in scopes:
        if not _SCOPE_TOKEN.match(name):
            raise InvalidInputError(f"not a valid scope name: {name[:64]!r}")
    return list(dict.fromkeys(scopes))


def allowed_scope(client: OAuthClient, requested: str, *, user_is_admin: bool) -> str:
    """Return the part of ``requested`` the client may get for this user.

    The ``admin`` scope needs both the client's registration and an admin user.
    """
    scope = client.get_allowed_scope(requested).split()
    return " ".join(name for name in scope if name != ADMIN_SCOPE or user_is_admin)


def require_client(client_id: str) -> OAuthClient:
    """Return the client (even disabled) with this ``client_id``.

    Raises:
        NotFoundError: no such client.

    """
    client = storage.find_client(client_id)
    if client is None:
        raise NotFoundError(f"no client with client_id {client_id!r}")
    return client


def list_clients(*, after: int | None = None, limit: int | None = None) -> list[OAuthClient]:
    """Return clients in id order, after the id ``after``, at most ``limit``."""
    return storage.list_clients(after=after, limit=limit)


@dataclass
class ClientUpdate:
    """The fields an admin may change; None leaves a field as it is."""

    client_name: str | None = None
    redirect_uris: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None
    backchannel_logout_uri: str | None = None
    frontchannel_logout_uri: str | None = None
    scope: list[str] | None = None
    is_trusted: bool | None = None
    is_disabled: bool | None = None
    # Given as fields so that None can mean "remove": unset fields are left alone.
    unset: set[str] = field(default_factory=set)


def update_client(client: OAuthClient, change: ClientUpdate) -> OAuthClient:
    """Validate and apply ``change``; audit; commit. A disabled client's tokens end.

    Raises:
        InvalidInputError: a field is malformed.

    """
    values: dict[str, Any] = {}
    if change.client_name is not None:
        name = change.client_name.strip()
        if not name or len(name) > 200:
            raise InvalidInputError("the client name must be 1 to 200 characters")
        values["client_name"] = name
    if change.redirect_uris is not None:
        if client.is_service_account and change.redirect_uris:
            raise InvalidInputError("a service account has no redirect URIs")
        if not change.redirect_uris and not client.is_service_account:
            raise InvalidInputError("at least one redirect URI is required")
        values["redirect_uris"] = [
            validate_redirect_uri(uri) for uri in dict.fromkeys(change.redirect_uris)
        ]
    if change.post_logout_redirect_uris is not None:
        values["post_logout_redirect_uris"] = [
            _validate_http_uri(uri, "post-logout redirect URI")
            for uri in dict.fromkeys(change.post_logout_redirect_uris)
        ]
    for key, what in (
        ("backchannel_logout_uri", "back-channel logout URI"),
        ("frontchannel_logout_uri", "front-channel logout URI"),
    ):
        uri = getattr(change, key)
        if uri is not None:
            if key == "backchannel_logout_uri":
                _validate_fetched_uri(uri, what, client.is_self_registered)
            else:
                _validate_http_uri(uri, what)
            values[key] = uri
        elif key in change.unset:
            values[key] = None
    if change.scope is not None:
        values["scope"] = " ".join(validate_scopes(change.scope))
    if change.is_trusted is not None:
        values["is_trusted"] = change.is_trusted
    if change.is_disabled is not None:
        values["is_disabled"] = change.is_disabled
    for key, value in values.items():
        setattr(client, key, value)
    audit.record("client_updated", rp=client.client_id, fields=sorted(values))
    if change.is_disabled:
        storage.revoke_tokens_of_client(client.client_id, db.now())
    db.get_session().commit()
    return client


def rotate_client_secret(client: OAuthClient) -> str:
    """Give a confidential client a new secret (the old one stops working); commit.

    Raises:
        ConflictError: the client authenticates without a shared secret.

    """
    if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
        raise ConflictError(f"a {client.token_endpoint_auth_method} client has no secret to rotate")
    secret = secrets.token_urlsafe(32)
    client.client_secret_hash = hash_secret(secret)
    audit.record("client_secret_rotated", rp=client.client_id)
    db.get_session().commit()
    return secret


def delete_client(client: OAuthClient) -> None:
    """Delete the client with its tokens, codes, consents and pending logout deliveries; commit.

    Its access tokens introspect inactive at once; its refresh tokens fail.
    """
    client_id = client.client_id
    counts = storage.delete_client(client)
    audit.record("client_deleted", rp=client_id, deleted=counts)
    db.get_session().commit()
