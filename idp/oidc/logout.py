"""RP-Initiated, Back-Channel and Front-Channel Logout 1.0 for OIDC participants."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Flask
from joserfc import jwt
from joserfc.jws import extract_compact

from idp import db
from idp import outbound
from idp.keys.store import get_key_store
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.models.oidc import OAuthClient
from idp.oidc import storage
from idp.oidc.claims import subject_for
from idp.sessions import logout as session_logout
from idp.settings import get_settings

logger = logging.getLogger(__name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = timedelta(minutes=2)


def build_logout_token_claims(
    *, issuer: str, client_id: str, sid: str, sub: str, now: datetime
) -> dict[str, Any]:
    """Return logout token claims (Back-Channel Logout 1.0 §2.4): never a ``nonce``."""
    issued = int(now.timestamp())
    return {
        "iss": issuer,
        "aud": client_id,
        "iat": issued,
        "exp": issued + int(LOGOUT_TOKEN_TTL.total_seconds()),
        "jti": secrets.token_urlsafe(24),
        "sid": sid,
        "sub": sub,
        "events": {BACKCHANNEL_EVENT: {}},
    }


def issue_logout_token(client: OAuthClient, login: LoginSession) -> str:
    """Sign a logout token for ``client`` about ``login`` with the client's ID token alg."""
    now = db.now()
    alg = client.id_token_signed_response_alg or "RS256"
    key = get_key_store().signing_key(alg, now)
    claims = build_logout_token_claims(
        issuer=get_settings().issuer,
        client_id=client.client_id,
        sid=login.sid,
        sub=subject_for(login.user, client),
        now=now,
    )
    header = {"alg": alg, "kid": key.kid, "typ": "logout+jwt"}
    token: str = jwt.encode(header, claims, key.jose_key)
    return token


def _post(uri: str, token: str, *, allow_private: bool) -> str | None:
    """POST one logout token within the fetch deadline; return None on success, else why."""
    try:
        response = outbound.fetch(
            uri,
            allow_private=allow_private,
            method="POST",
            body=urlencode({"logout_token": token}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    except outbound.FetchError as error:
        return str(error)
    # A redirect is not followed (it could point anywhere): only a 2xx is a delivery.
    return None if 200 <= response.status < 300 else f"HTTP {response.status}"


def on_sessions_end(
    logins: Sequence[LoginSession], joined: list[SessionParticipant], reason: str
) -> list[session_logout.Delivery]:
    """Revoke the sessions' tokens; return a back-channel logout for each participant with a URI."""
    storage.revoke_tokens_of_logins([login.id for login in logins], db.now())
    session_logout.mark_logged_out(joined)
    storage.preload_clients([participant.rp for participant in joined])
    deliveries = []
    for participant in joined:
        client = storage.get_client(participant.rp)
        if client is not None and client.backchannel_logout_uri:
            deliveries.append(
                session_logout.Delivery(
                    participant.login_session_id, client.client_id, client.backchannel_logout_uri
                )
            )
    return deliveries


def prepare_delivery(delivery: LogoutDelivery) -> session_logout.Send | str:
    """Sign a fresh logout token for a queued delivery; return the POST that sends it."""
    client = storage.get_client(delivery.rp)
    if client is None:
        return "client no longer registered"
    token = issue_logout_token(client, delivery.login)
    allow_private = not client.is_self_registered
    return lambda: _post(delivery.uri, token, allow_private=allow_private)


def is_reachable_without_browser(client_id: str) -> bool:
    """Return whether the client registered a back-channel logout URI."""
    client = storage.get_client(client_id)
    return client is not None and bool(client.backchannel_logout_uri)


def front_channel_urls(login: LoginSession, joined: list[SessionParticipant]) -> list[str]:
    """Return each participant's ``frontchannel_logout_uri`` with ``iss`` and ``sid``."""
    query = urlencode({"iss": get_settings().issuer, "sid": login.sid})
    urls = []
    for participant in joined:
        client = storage.get_client(participant.rp)
        if client is None or not client.frontchannel_logout_uri:
            continue
        separator = "&" if "?" in client.frontchannel_logout_uri else "?"
        urls.append(f"{client.frontchannel_logout_uri}{separator}{query}")
    return urls


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """RP-Initiated Logout 1.0: an expired id_token_hint still identifies the session."""

    def get_server_jwks(self) -> dict[str, Any]:
        jwks: dict[str, Any] = get_key_store().public_jwks(db.now())
        return jwks

    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        from authlib.oauth2.rfc6749.errors import InvalidRequestError

        if len(id_token_hint) > 8192:
            raise InvalidRequestError("The id_token_hint is too long.")
        try:
            claims: dict[str, Any] = super()._validate_id_token_hint(id_token_hint)
        except (ValueError, TypeError):
            # Hostile headers joserfc does not wrap ("crit": 1 reaches check_crit_header):
            # https://github.com/authlib/joserfc/blob/1.8.0/src/joserfc/registry.py#L200-L209
            raise InvalidRequestError("The id_token_hint is not a valid ID Token.") from None
        # Our access and logout tokens are signed by the same keys and carry iss, aud and sid
        # too: only a token typed as an ID token may end a session without confirmation.
        typ = extract_compact(id_token_hint.encode()).protected.get("typ", "JWT")
        if typ != "JWT":
            raise InvalidRequestError("The id_token_hint is not an ID Token.")
        if claims.get("iss") != get_settings().issuer or not isinstance(claims.get("sid"), str):
            raise InvalidRequestError("The id_token_hint was not issued here.")
        return claims

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any:
        # Our ID tokens carry ``aud`` as a one-element list, plus ``azp`` (Core §2); Authlib
        # only resolves a string ``aud``, which left every hint without its client.
        # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oidc/rpinitiated/end_session.py#L219-L229
        aud = id_token_claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        azp = id_token_claims.get("azp")
        if len(audiences) == 1 and isinstance(audiences[0], str):
            return self.server.query_client(audiences[0])
        if isinstance(azp, str) and azp in audiences:
            return self.server.query_client(azp)
        return None

    def end_session(self, end_session_request: Any) -> None:
        raise NotImplementedError  # the view ends the session itself, after confirmation


def init_app(app: Flask) -> None:
    registry = session_logout.get_registry(app)
    registry.on_end["oidc"] = on_sessions_end
    registry.senders["oidc"] = prepare_delivery
    registry.reachable["oidc"] = is_reachable_without_browser
    registry.front_channel["oidc"] = front_channel_urls
