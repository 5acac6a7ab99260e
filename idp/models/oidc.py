"""OAuth 2.0 / OpenID Connect tables: clients, codes, tokens, consents (Authlib mixins)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime
from idp.models.login import LoginSession
from idp.models.user import User


def hash_secret(value: str) -> str:
    """Return the stored form of a high-entropy secret (client secret, code, refresh token)."""
    return hashlib.sha256(value.encode()).hexdigest()


def _loopback_without_port(uri: str) -> str | None:
    """Return an ``http`` loopback IP literal URI without its port, else None."""
    if not uri.startswith("http://"):
        return None
    authority, slash, rest = uri[len("http://") :].partition("/")
    for host in ("127.0.0.1", "[::1]"):
        port = authority[len(host) + 1 :] if authority.startswith(host + ":") else None
        if authority == host or (
            port and port.isascii() and port.isdigit() and 0 < int(port) <= 65535
        ):
            return f"http://{host}{slash}{rest}"
    return None


class OAuthClient(Base):
    """A registered OIDC client (RFC 7591 metadata names)."""

    __tablename__ = "oauth_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    client_name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(40),
        default="client_secret_basic",  # noqa: S105 (a method name)
    )
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    subject_type: Mapped[str] = mapped_column(String(10), default="public")
    is_trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # An API that may introspect any token; other clients introspect only their own.
    is_resource_server: Mapped[bool] = mapped_column(Boolean, default=False)
    # A machine: only the client_credentials grant, for the scopes it was registered with
    # (``admin`` for the admin API).
    is_service_account: Mapped[bool] = mapped_column(Boolean, default=False)
    # Registered by anyone through RFC 7591: its URIs are fetched only on public addresses.
    is_self_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    # RFC 7591 clients are managed through a registration access token (hash only).
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Authlib ClientMixin -------------------------------------------------------------
    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 (a method name)

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
        }

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OAuth 2.0 Security BCP: redirect_uri is required whenever more than one exists.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(item for item in scope.split() if item in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (OAuth 2.0 Security BCP §4.1.3).
        if redirect_uri in self.redirect_uris:
            return True
        # RFC 8252 §7.3: "The authorization server MUST allow any port to be specified at the
        # time of the request for loopback IP redirect URIs" (native apps, so public clients).
        requested = _loopback_without_port(redirect_uri)
        if not self.is_public or requested is None:
            return False
        return any(_loopback_without_port(uri) == requested for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret_hash is None:
            return False
        return hmac.compare_digest(self.client_secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class AuthorizationCode(Base):
    __tablename__ = "oauth_authorization_code"
    # The nonce-reuse check at /authorize looks codes up by client and nonce.
    __table_args__ = (Index("ix_oauth_authorization_code_client_id_nonce", "client_id", "nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    login_session_id: Mapped[int] = mapped_column(
        ForeignKey("login_session.id", ondelete="CASCADE"), index=True
    )
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    response_type: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(512))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    acr: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(lazy="joined")
    login: Mapped[LoginSession] = relationship(lazy="joined")

    # Authlib AuthorizationCodeMixin ---------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.login.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return self.acr or self.login.acr

    def get_amr(self) -> list[str] | None:
        return list(self.login.amr) or None


class OAuthToken(Base):
    """One issuance: a JWT access token (by ``jti``) and maybe a refresh token (by hash)."""

    __tablename__ = "oauth_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    login_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("login_session.id", ondelete="CASCADE"), index=True
    )
    authorization_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_authorization_code.id", ondelete="SET NULL"), index=True
    )
    # Every refresh token descended from one code shares a family; reuse revokes it.
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_token.id"))
    scope: Mapped[str] = mapped_column(Text)
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User | None] = relationship(lazy="joined")
    login: Mapped[LoginSession | None] = relationship(lazy="joined")


class Consent(Base):
    """Scopes a user granted to a client, remembered until revoked."""

    __tablename__ = "oauth_consent"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(128), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReplayEntry(Base):
    """A one-time value seen recently (assertion ``jti``, SAML request ID) until it expires."""

    __tablename__ = "replay_entry"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
