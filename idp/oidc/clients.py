"""Client registration shared by ``idp client add`` and RFC 7591 dynamic registration."""

from __future__ import annotations

import json
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
from idp.models.oidc import OAuthClient
from idp.models.oidc import hash_secret
from idp.oidc import storage
from idp.uris import is_loopback

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
ID_TOKEN_ALGS = ("RS256", "ES256")
DEFAULT_SCOPE = "openid profile email groups offline_access"
MIN_SECRET_LENGTH = 32


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

    The demo apps' loopback URIs stay allowed for the operator (CONTRACT.md); a registrant
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
    if not spec.redirect_uris:
        raise InvalidInputError("at least one redirect URI is required")
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
        response_types=["code"],
        scope=spec.scope,
        jwks=spec.jwks,
        jwks_uri=spec.jwks_uri,
        id_token_signed_response_alg=spec.id_token_signed_response_alg,
        subject_type=spec.subject_type,
        is_trusted=spec.is_trusted,
        is_resource_server=spec.is_resource_server,
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
        self_registered=spec.self_registered,
    )
    db.get_session().commit()
    return client, secret
