"""Single Logout (Profiles §4.4): end what an SP's LogoutRequest names; build what the IdP sends.

LogoutRequests to the session's other SAML participants: by SOAP through the shared delivery
queue where the SP has a SOAP endpoint (Bindings §3.2), else in the browser (signed
HTTP-Redirect URLs, or a page that POSTs it); LogoutResponses to the SP that asked (SAML Core
§3.7; Bindings §3.4.4.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from typing import Final

from flask import Flask
from flask import current_app
from itsdangerous import BadData
from itsdangerous import URLSafeTimedSerializer
from lxml import etree

from idp import audit
from idp import db
from idp import outbound
from idp.errors import SamlRequestError
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.models.saml import SamlSessionIndex
from idp.models.saml import ServiceProvider
from idp.saml import BINDING_POST
from idp.saml import BINDING_REDIRECT
from idp.saml import BINDING_SOAP
from idp.saml import LOGOUT_REASON_ADMIN
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

# A front-channel page that POSTs a LogoutRequest is loaded right after the logout.
POST_FRAME_TTL: Final = timedelta(minutes=5)
_POST_FRAME_SALT: Final = "idp.saml.slo-post-frame"


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
    participants (OIDC back-channel logout already went out from ``end_logins``).
    """
    records = storage.find_session_indexes(sp.entity_id, logout.name_id, logout.session_indexes)
    # Profiles §4.4.3.3: the requester is not sent a LogoutRequest of its own.
    ended = len(
        sessions.end_logins(
            [record.login for record in records], "saml_logout", initiator=("saml", sp.entity_id)
        )
    )
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


def build_soap_response(*, in_response_to: str, status: str) -> bytes:
    """Return a signed LogoutResponse in a SOAP envelope (Bindings §3.2.3.3)."""
    now = db.now()
    response = responses.build_logout_response(
        idp_entity_id=_idp_entity_id(),
        destination=None,
        in_response_to=in_response_to,
        now=now,
        status=status,
    )
    signing.sign(response, *signing.signing_key(now))
    return bindings.encode_soap(response)


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
    return redirect_url_of(record, endpoint, relay_state=relay_state, reason=reason)


def redirect_url_of(
    record: SamlSessionIndex,
    endpoint: tuple[str, str],
    *,
    relay_state: str | None = None,
    reason: str = LOGOUT_REASON_USER,
) -> str:
    """Return the signed HTTP-Redirect URL of a LogoutRequest to ``endpoint``."""
    message = build_request_to(record, endpoint, reason, db.now())
    return redirect_url(endpoint[1], "SAMLRequest", message, relay_state)


def soap_location(sp: ServiceProvider) -> str | None:
    """Return the SP's SOAP SingleLogoutService location, or None."""
    for endpoint in sp.slo_endpoints:
        if endpoint["binding"] == BINDING_SOAP:
            return str(endpoint["location"])
    return None


def is_reachable_without_browser(entity_id: str) -> bool:
    """Return whether the SP hears of a session's end by back-channel (a SOAP SLO endpoint).

    SPs with front-channel SLO only are told only while a browser shows the logged-out page.
    """
    sp = storage.find_service_provider(entity_id)
    return sp is not None and soap_location(sp) is not None


def on_sessions_end(
    logins: Sequence[LoginSession], joined: list[SessionParticipant], reason: str
) -> list[session_logout.Delivery]:
    """Return a SOAP LogoutRequest for each participant with a SOAP endpoint (an EndHandler)."""
    sps = storage.find_service_providers([participant.rp for participant in joined])
    deliveries = []
    for participant in joined:
        sp = sps.get(participant.rp)
        location = soap_location(sp) if sp is not None else None
        if sp is not None and location is not None:
            deliveries.append(
                session_logout.Delivery(participant.login_session_id, sp.entity_id, location)
            )
    return deliveries


def prepare_delivery(delivery: LogoutDelivery) -> session_logout.Send | str:
    """Sign a fresh LogoutRequest for a queued SOAP delivery; return the exchange (a Sender)."""
    record = storage.get_session_index(delivery.login_session_id, delivery.rp)
    if record is None:
        return "service provider no longer registered"
    now = db.now()
    reason = LOGOUT_REASON_ADMIN if delivery.login.revoked_reason == "admin_revoked" else None
    message = build_request_to(
        record, (BINDING_SOAP, delivery.uri), reason or LOGOUT_REASON_USER, now
    )
    signing.sign(message, *signing.signing_key(now))
    body = bindings.encode_soap(message)
    request_id = str(message.get("ID"))
    certificates = list(record.sp.signing_certificates)
    return lambda: exchange_soap(delivery.uri, body, request_id, certificates)


def exchange_soap(uri: str, body: bytes, request_id: str, certificates: list[str]) -> str | None:
    """POST a SOAP LogoutRequest and check the LogoutResponse; return None on Success, else why.

    Runs in a delivery thread: no app context, no database.
    """
    try:
        # Operators register SPs (metadata), so their endpoints may be on private networks.
        answer = outbound.fetch(
            uri,
            allow_private=True,
            method="POST",
            body=body,
            headers={
                "Content-Type": bindings.SOAP_CONTENT_TYPE,
                "SOAPAction": bindings.SOAP_ACTION,
            },
        )
    except outbound.FetchError as error:
        return str(error)
    if answer.status != 200:
        return f"HTTP {answer.status}"
    try:
        response = requests.parse_logout_response(bindings.decode_soap(answer.body))
        # Bindings §3.2.2: SOAP may rely on TLS alone; a signature present must verify.
        if signing.has_signature(response.root):
            signing.verify_enveloped_signature(response.root, certificates)
    except SamlRequestError as error:
        return f"bad LogoutResponse: {error}"
    if response.in_response_to != request_id:
        return "the LogoutResponse answers another request"
    if response.status != STATUS_SUCCESS:
        return f"LogoutResponse status {response.status}"[:300]
    return None


def _post_frame_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_POST_FRAME_SALT)


def post_frame_url(record: SamlSessionIndex) -> str:
    """Return the IdP page that POSTs a LogoutRequest to ``record``'s SP (HTTP-POST SLO)."""
    token = _post_frame_serializer().dumps(record.session_index)
    return f"{get_settings().issuer}/saml/slo/post?request={token}"


def require_post_frame_record(token: str) -> SamlSessionIndex:
    """Return the SP session a front-channel POST page names; only ended sessions qualify.

    Raises:
        SamlRequestError: the token is not ours, has expired, or names a live session.

    """
    try:
        session_index = _post_frame_serializer().loads(
            token, max_age=int(POST_FRAME_TTL.total_seconds())
        )
    except BadData:
        raise SamlRequestError("The sign-out link is not valid.") from None
    record = storage.get_session_index_by_value(str(session_index))
    if record is None or record.login.revoked_at is None:
        raise SamlRequestError("The sign-out link is not valid.")
    return record


def front_channel_urls(login: LoginSession, participants: list[SessionParticipant]) -> list[str]:
    """Return the browser's logout URLs for the SAML SPs of ``login`` (a FrontChannel).

    ``participants`` are the session's SAML participants to notify (the registry has already
    left out the one that started the logout). An SP with a SOAP endpoint is told by
    back-channel instead; a Redirect SLO gets a signed URL, an HTTP-POST one a page of the IdP
    that POSTs the request; SPs without SLO are skipped.
    """
    wanted = {participant.rp for participant in participants}
    urls = []
    for record in storage.list_participants(login):
        if record.sp_entity_id not in wanted or soap_location(record.sp) is not None:
            continue
        endpoint = responses.logout_destination(record.sp)
        if endpoint is None:
            continue
        if endpoint[0] == BINDING_POST:
            urls.append(post_frame_url(record))
        else:
            urls.append(redirect_url_of(record, endpoint))
    return urls


def init_app(app: Flask) -> None:
    """Let the shared logout reach the SAML participants of a session (SOAP, front-channel)."""
    registry = session_logout.get_registry(app)
    registry.on_end["saml"] = on_sessions_end
    registry.senders["saml"] = prepare_delivery
    registry.reachable["saml"] = is_reachable_without_browser
    registry.front_channel["saml"] = front_channel_urls
