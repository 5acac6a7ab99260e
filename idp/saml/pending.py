"""A validated AuthnRequest waiting for a login, carried signed in the resume link.

The link holds the request, not the SAMLRequest: the SP's message is checked once at /saml/sso
(Profiles §4.1.4.1) and the answer goes out once per pending request.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from flask import current_app
from itsdangerous import BadData
from itsdangerous import URLSafeSerializer

from idp import replay
from idp.errors import SamlRequestError
from idp.models.login import LoginSession
from idp.models.saml import ServiceProvider
from idp.saml import bindings
from idp.saml import metadata
from idp.saml.requests import AuthnRequest

# How long a request may wait for the user to log in before it must be sent again.
PENDING_REQUEST_TTL: Final = timedelta(minutes=30)
_PENDING_SALT: Final = "idp.saml.pending-authn-request"


@dataclass(frozen=True)
class PendingRequest:
    """A validated AuthnRequest (or IdP-initiated login) waiting for a login."""

    sp: str
    acs_url: str
    request_id: str | None
    relay_state: str | None
    force_authn: bool
    is_passive: bool
    name_id_format: str | None
    allow_create: bool | None
    authn_contexts: tuple[str, ...]
    comparison: str
    received_at: datetime
    nonce: str

    def needs_fresh_login(self, login: LoginSession) -> bool:
        """Return whether ForceAuthn asks for a login newer than ``login`` (SAML Core §3.4.1)."""
        return self.force_authn and login.auth_time < self.received_at


def build_pending(
    authn: AuthnRequest,
    *,
    sp: ServiceProvider,
    acs_url: str,
    relay_state: str | None,
    now: datetime,
) -> PendingRequest:
    """Build the pending request of a validated AuthnRequest."""
    return PendingRequest(
        sp=sp.entity_id,
        acs_url=acs_url,
        request_id=authn.id,
        relay_state=relay_state,
        force_authn=authn.force_authn,
        is_passive=authn.is_passive,
        name_id_format=authn.name_id_format,
        allow_create=authn.allow_create,
        authn_contexts=authn.authn_contexts,
        comparison=authn.comparison,
        received_at=now,
        nonce=secrets.token_urlsafe(16),
    )


def validate_idp_initiated(sp: ServiceProvider, relay_state: str | None) -> None:
    """Refuse a RelayState too long or not registered for ``sp``.

    Raises:
        SamlRequestError: the RelayState is not allowed.

    """
    bindings.validate_relay_state(relay_state)
    if relay_state is not None and relay_state not in sp.relay_states:
        raise SamlRequestError("This RelayState is not allowed for this service provider.")


def build_idp_initiated(
    sp: ServiceProvider, *, relay_state: str | None, now: datetime
) -> PendingRequest:
    """Build an unsolicited login for ``sp`` at its default ACS (Profiles §4.1.5)."""
    return PendingRequest(
        sp=sp.entity_id,
        acs_url=metadata.select_acs(sp.acs_endpoints),
        request_id=None,
        relay_state=relay_state,
        force_authn=False,
        is_passive=False,
        name_id_format=None,
        allow_create=True,
        authn_contexts=(),
        comparison="exact",
        received_at=now,
        nonce="",
    )


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_PENDING_SALT)


def dump_pending(pending: PendingRequest) -> str:
    """Return ``pending`` as a signed token for the resume link."""
    data: dict[str, Any] = asdict(pending)
    data["received_at"] = pending.received_at.isoformat()
    token: str = _serializer().dumps(data)
    return token


def parse_pending(token: str) -> PendingRequest:
    """Return the pending request a resume link carries.

    Raises:
        SamlRequestError: the token is not one this IdP signed.

    """
    try:
        data = _serializer().loads(token)
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        data["authn_contexts"] = tuple(data["authn_contexts"])
        return PendingRequest(**data)
    except (BadData, KeyError, TypeError, ValueError):
        raise SamlRequestError(
            "The sign-in link is not valid; start again from the application."
        ) from None


def validate_resumable(pending: PendingRequest, sp: ServiceProvider, now: datetime) -> None:
    """Refuse a pending request whose ACS left the SP's metadata, or that waited too long.

    Raises:
        SamlRequestError: it can no longer be answered.

    """
    if pending.acs_url not in [endpoint["location"] for endpoint in sp.acs_endpoints]:
        raise SamlRequestError("The AssertionConsumerServiceURL is not in the SP's metadata.")
    if now > pending.received_at + PENDING_REQUEST_TTL:
        raise SamlRequestError("The sign-in took too long; start again from the application.")


def remember_answered(pending: PendingRequest) -> None:
    """Record that the resume link of ``pending`` was answered; it answers once.

    Raises:
        SamlRequestError: it was already answered.

    """
    expires_at = pending.received_at + PENDING_REQUEST_TTL
    if not replay.remember_once(f"saml:resume:{pending.nonce}", expires_at):
        raise SamlRequestError("This sign-in was already completed.")
