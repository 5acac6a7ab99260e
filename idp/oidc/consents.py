"""A user's consents to OIDC clients: list them and revoke one (with the client's tokens)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from idp import audit
from idp import db
from idp.attributes import SCOPES
from idp.errors import NotFoundError
from idp.models.user import User
from idp.oidc import storage


@dataclass(frozen=True)
class ConsentedClient:
    """A client the user allowed, with what and since when."""

    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime


def list_consents(user: User) -> list[ConsentedClient]:
    """Return the clients ``user`` consented to and has not revoked, newest first."""
    return [
        ConsentedClient(
            client.client_id, client.client_name, _in_order(consent.scopes), consent.granted_at
        )
        for consent, client in storage.list_live_consents(user.id)
    ]


def _in_order(scopes: list[str]) -> list[str]:
    # The consent page's order: openid, profile, email, ...; unknown names last.
    return sorted(
        scopes, key=lambda name: (SCOPES.index(name) if name in SCOPES else len(SCOPES), name)
    )


def revoke_consent(user: User, client_id: str) -> None:
    """Forget the user's consent to a client and end the tokens it holds for them; commit.

    The client's refresh tokens fail and its access tokens introspect inactive at once; its
    next authorization request shows the consent page again. The login sessions go on.

    Raises:
        NotFoundError: ``user`` has no live consent to this client.

    """
    consent = storage.get_consent(user.id, client_id) if len(client_id) <= 128 else None
    if consent is None or consent.revoked_at is not None:
        raise NotFoundError("no such consent")
    now = db.now()
    consent.revoked_at = now
    revoked = storage.revoke_tokens_of_user_at_client(user.id, client_id, now)
    audit.record("consent_revoked", user_id=user.id, rp=client_id, tokens_revoked=revoked)
    db.get_session().commit()


def get_client_names(client_ids: list[str]) -> dict[str, str]:
    """Return the display name of each known client, by ``client_id``."""
    return storage.get_client_names(client_ids)
