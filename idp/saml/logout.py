"""Single Logout (Profiles §4.4): end what an SP's LogoutRequest names; build what the IdP sends.

LogoutRequests to the session's other SAML participants (front-channel, signed HTTP-Redirect
URLs) and LogoutResponses to the SP that asked (SAML Core §3.7; Bindings §3.4.4.1).
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from lxml import etree

from idp import audit
from idp import db
from idp.errors import SamlRequestError
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.models.saml import SamlSessionIndex
from idp.models.saml import ServiceProvider
from idp.saml import BINDING_REDIRECT
from idp.saml import LOGOUT_REASON_USER
from idp.saml import STATUS_SUCCESS
from idp.saml import STATUS_UNKNOWN_PRINCIPAL
from idp.saml import bindings
from idp.saml import metadata
from idp.saml import requests
from idp.saml import responses
from idp.saml import signing
from idp.saml import storage
from idp.saml.requests import LogoutRequest
from idp.saml.requests import LogoutResponse
from idp.sessions import logout as session_logout
from idp.sessions import service as sessions
from idp.settings import get_settings


def _idp_entity_id() -> str:
    return metadata.idp_entity_id(get_settings().issuer)


def validate_not_expired(logout: LogoutRequest, now: datetime) -> None:
    """Refuse a LogoutRequest past its NotOnOrAfter (SAML Core §3.7.1).

    Raises:
        SamlRequestError: it has expired.

    """
    # Skew subtracted from now, not added to a NotOnOrAfter that may be year 9999.
    if logout.not_on_or_after is not None and logout.not_on_or_after <= now - requests.CLOCK_SKEW:
        raise SamlRequestError("The LogoutRequest has expired.")


def end_sessions(sp: ServiceProvider, logout: LogoutRequest) -> tuple[str, list[str]]:
    """End the login sessions ``logout`` names (SAML Core §3.7.3.2); audit; commit.

    Return the LogoutResponse status and the front-channel logout URLs of the sessions' other
    participants (OIDC back-channel logout already went out from ``revoke_login``).
    """
    records = storage.find_session_indexes(sp.entity_id, logout.name_id, logout.session_indexes)
    ended = 0
    for record in records:
        if sessions.revoke_login(record.login, "saml_logout"):
            ended += 1
    first = records[0].login if records else None
    audit.record(
        "saml_logout",
        user_id=first.user_id if first else None,
        sid=first.sid if first else None,
        rp=sp.entity_id,
        sessions_ended=ended,
        known=bool(records),
    )
    db.get_session().commit()
    logins = {record.login.id: record.login for record in records}.values()
    urls = [
        url
        for login in logins
        for url in session_logout.front_channel_urls(login, initiator=sp.entity_id)
    ]
    return (STATUS_SUCCESS if records else STATUS_UNKNOWN_PRINCIPAL), urls


def record_logout_response(sp: ServiceProvider, answer: LogoutResponse) -> None:
    """Audit an SP's answer to an IdP-initiated LogoutRequest; commit."""
    audit.record("saml_logout_response", rp=sp.entity_id, status=answer.status)
    db.get_session().commit()


def response_endpoint(sp: ServiceProvider, binding: str) -> tuple[str, str] | None:
    """Return ``(binding, URL)`` where ``sp`` takes LogoutResponses, or None without SLO."""
    endpoint = metadata.select_slo(sp.slo_endpoints, binding)
    if endpoint is None:
        return None
    # SAML Metadata §2.2.2: responses go to ResponseLocation when there is one.
    return str(endpoint["binding"]), str(endpoint["response_location"] or endpoint["location"])


def build_response_to(
    endpoint: tuple[str, str], *, in_response_to: str, status: str, now: datetime
) -> etree._Element:
    """Build the unsigned LogoutResponse delivered at ``endpoint`` (SAML Core §3.7.2)."""
    return responses.build_logout_response(
        idp_entity_id=_idp_entity_id(),
        destination=endpoint[1],
        in_response_to=in_response_to,
        now=now,
        status=status,
    )


def build_request_to(
    record: SamlSessionIndex, endpoint: tuple[str, str], reason: str, now: datetime
) -> etree._Element:
    """Build the unsigned LogoutRequest naming ``record`` for its SP's ``endpoint``."""
    return responses.build_logout_request(
        record.sp,
        record.name_id,
        record.session_index,
        now,
        idp_entity_id=_idp_entity_id(),
        name_id_format=record.name_id_format,
        binding=endpoint[0],
        reason=reason,
    )


def redirect_url(
    location: str, field: str, message: etree._Element, relay_state: str | None
) -> str:
    """Return the HTTP-Redirect URL of ``message``, its query signed (Bindings §3.4.4.1)."""
    key_pem, _ = signing.signing_key(db.now())
    return bindings.encode_redirect(
        location,
        field,
        signing.serialize(message),
        relay_state,
        signing.RSA_SHA256,
        lambda octets: signing.sign_redirect_query(octets, key_pem),
    )


def logout_request_url(
    record: SamlSessionIndex, *, relay_state: str | None = None, reason: str = LOGOUT_REASON_USER
) -> str | None:
    """Return the signed HTTP-Redirect URL of a LogoutRequest to the SP of ``record``.

    None when the SP registered no HTTP-Redirect SingleLogoutService.
    """
    endpoint = responses.logout_destination(record.sp, BINDING_REDIRECT)
    if endpoint is None or endpoint[0] != BINDING_REDIRECT:
        return None
    message = build_request_to(record, endpoint, reason, db.now())
    return redirect_url(endpoint[1], "SAMLRequest", message, relay_state)


def front_channel_urls(login: LoginSession, participants: list[SessionParticipant]) -> list[str]:
    """Return signed Redirect LogoutRequest URLs for the SAML SPs of ``login`` (a FrontChannel).

    ``participants`` are the session's SAML participants to notify (the registry has already
    left out the one that started the logout). SPs without a Redirect SLO endpoint are skipped.
    """
    wanted = {participant.rp for participant in participants}
    urls = []
    for record in storage.list_participants(login):
        if record.sp_entity_id in wanted:
            url = logout_request_url(record, reason=LOGOUT_REASON_USER)
            if url is not None:
                urls.append(url)
    return urls


def init_app(app: Flask) -> None:
    """Let the shared logout reach the SAML participants of a session (front-channel)."""
    session_logout.get_registry(app).front_channel["saml"] = front_channel_urls
