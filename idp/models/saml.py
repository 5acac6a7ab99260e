"""SAML 2.0 tables: registered service providers, SessionIndex records, persistent NameIDs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Boolean
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from idp.db import Base
from idp.db import UTCDateTime
from idp.models.login import LoginSession


class ServiceProvider(Base):
    """A registered SAML SP: what its metadata says, plus the IdP's per-SP settings."""

    __tablename__ = "saml_service_provider"

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # The metadata as registered, kept so an operator can see what was read from it.
    metadata_xml: Mapped[str] = mapped_column(Text)
    # [{"binding", "location", "index", "is_default"}] in document order.
    acs_endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{"binding", "location", "response_location"}] in document order.
    slo_endpoints: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    signing_certificates: Mapped[list[str]] = mapped_column(JSON, default=list)
    encryption_certificates: Mapped[list[str]] = mapped_column(JSON, default=list)
    authn_requests_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    want_assertions_signed: Mapped[bool] = mapped_column(Boolean, default=False)
    name_id_formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Settings -----------------------------------------------------------------------------
    name_id_format: Mapped[str] = mapped_column(String(200))
    # Claims (idp.attributes names) released as SAML attributes; None releases all of them.
    attributes: Mapped[list[str] | None] = mapped_column(JSON)
    sign_response: Mapped[bool] = mapped_column(Boolean, default=True)
    sign_assertion: Mapped[bool] = mapped_column(Boolean, default=True)
    encrypt_assertion: Mapped[bool] = mapped_column(Boolean, default=False)
    # RelayState values an IdP-initiated login may carry (exact match).
    relay_states: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SamlSessionIndex(Base):
    """An SP that received an assertion in a login session: its NameID and SessionIndex."""

    __tablename__ = "saml_session_index"
    __table_args__ = (UniqueConstraint("login_session_id", "sp_entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sp_entity_id: Mapped[str] = mapped_column(
        ForeignKey("saml_service_provider.entity_id", ondelete="CASCADE"), index=True
    )
    login_session_id: Mapped[int] = mapped_column(
        ForeignKey("login_session.id", ondelete="CASCADE")
    )
    name_id: Mapped[str] = mapped_column(String(512))
    name_id_format: Mapped[str] = mapped_column(String(200))
    # Random per (login, SP): the SP learns nothing it could correlate with other SPs.
    session_index: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_issued_at: Mapped[datetime] = mapped_column(UTCDateTime())

    sp: Mapped[ServiceProvider] = relationship(lazy="joined")
    login: Mapped[LoginSession] = relationship(lazy="joined")


class SamlPersistentId(Base):
    """The pairwise persistent NameID of a user at an SP: random, stored, never reassigned."""

    __tablename__ = "saml_persistent_id"
    __table_args__ = (
        UniqueConstraint("user_id", "sp_entity_id"),
        UniqueConstraint("sp_entity_id", "name_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # No foreign key: an SP removed and registered again must find the same identifiers.
    sp_entity_id: Mapped[str] = mapped_column(String(1024))
    name_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
