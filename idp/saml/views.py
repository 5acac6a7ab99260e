"""SAML endpoints: /saml/metadata, /saml/sso (+ IdP-initiated), /saml/slo (Profiles §4.1, §4.4).

Hostile or unaddressable requests get an HTML 400 here; errors with a validated SP and ACS
go back to the ACS as a signed Response with a status (STYLE.md, error table).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Final

from flask import Blueprint
from flask import Flask
from flask import current_app
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadData
from itsdangerous import URLSafeSerializer
from lxml import etree
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from idp import audit
from idp import db
from idp import replay
from idp.errors import SamlRequestError
from idp.errors import SamlStatusError
from idp.keys.store import get_key_store
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.models.saml import SamlSessionIndex
from idp.models.saml import ServiceProvider
from idp.models.user import User
from idp.saml import BINDING_REDIRECT
from idp.saml import LOGOUT_REASON_USER
from idp.saml import NAMEID_PERSISTENT
from idp.saml import NAMEID_TRANSIENT
from idp.saml import STATUS_INVALID_NAMEID_POLICY
from idp.saml import STATUS_NO_PASSIVE
from idp.saml import STATUS_SUCCESS
from idp.saml import STATUS_UNKNOWN_PRINCIPAL
from idp.saml import bindings
from idp.saml import metadata
from idp.saml import requests
from idp.saml import responses
from idp.saml import signing
from idp.saml import storage
from idp.saml.bindings import InboundMessage
from idp.sessions import logout as session_logout
from idp.sessions import requesters
from idp.sessions import service as sessions
from idp.settings import Settings

bp = Blueprint("saml", __name__)

# How long a request may wait for the user to log in before it must be sent again.
PENDING_REQUEST_TTL: Final = timedelta(minutes=30)
_PENDING_SALT: Final = "idp.saml.pending-authn-request"


def _settings() -> Settings:
    settings: Settings = current_app.extensions["idp.settings"]
    return settings


def _entity_id() -> str:
    return metadata.idp_entity_id(_settings().issuer)


@bp.errorhandler(SamlRequestError)
def _refused(error: SamlRequestError) -> ResponseReturnValue:
    database = db.get_session()
    database.rollback()  # nothing of a refused request is kept, except the audit line
    audit.record("saml_request_refused", rp=g.get("saml_rp"), reason=str(error))
    database.commit()
    page = render_template(
        "errors/error.html", status=400, title="Bad SAML request", message=str(error)
    )
    return page, 400, {"Cache-Control": "no-store"}


def _post_form(
    action: str,
    field: str,
    xml: bytes,
    relay_state: str | None,
    frontchannel_urls: Sequence[str] = (),
) -> Response:
    page = render_template(
        "saml/post_form.html",
        action=action,
        field=field,
        value=bindings.encode_post(xml),
        relay_state=relay_state,
        frontchannel_urls=list(frontchannel_urls),
    )
    # The page carries a bearer assertion: never cached, never framed.
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY"}
    response: Response = make_response(page, 200, headers)  # text/html, as Flask's default
    return response


def _signing_key(now: datetime) -> tuple[str, str]:
    _, key_pem, cert_pem = get_key_store().saml_signing_key(now)
    return key_pem, cert_pem


def _receive() -> InboundMessage:
    if request.method == "POST":
        return bindings.decode_post(request.form.to_dict(flat=False))
    return bindings.decode_redirect(request.query_string)


def _verify_signature(
    sp: ServiceProvider, message: InboundMessage, root: etree._Element, *, required: bool
) -> None:
    """Verify the message's signature, whatever the binding; refuse it unsigned if required."""
    embedded = signing.has_signature(root)
    # Bindings §3.4.4.1: an XML signature "MUST be removed" before Redirect encoding.
    if embedded and message.binding == BINDING_REDIRECT:
        raise SamlRequestError("A Redirect-bound message must not embed an XML signature.")
    if message.signature is not None and message.signed_octets is not None:
        signing.verify_redirect_signature(
            message.signed_octets, message.signature, message.sig_alg, sp.signing_certificates
        )
    elif embedded:
        signing.verify_enveloped_signature(root, sp.signing_certificates)
    elif required:
        raise SamlRequestError("The request must be signed.")


def _replay_key(kind: str, issuer: str, message_id: str) -> str:
    digest = hashlib.sha256(f"{issuer}\n{message_id}".encode()).hexdigest()
    return f"saml:{kind}:{digest}"


def _remember_request(kind: str, issuer: str, message_id: str, issue_instant: datetime) -> None:
    expires_at = issue_instant + requests.MESSAGE_MAX_AGE + requests.CLOCK_SKEW
    if not replay.remember_once(_replay_key(kind, issuer, message_id), expires_at):
        raise SamlRequestError("This request was already used; start again from the application.")


# -- metadata -----------------------------------------------------------------------------------


@bp.route("/saml/metadata")
def idp_metadata() -> ResponseReturnValue:
    now = db.now()
    settings = _settings()
    store = get_key_store()
    document = metadata.build_idp_metadata(
        issuer=settings.issuer,
        certificates=[pem for _, pem in store.saml_certificates(now)],
        cache_duration=settings.jwks_max_age,
        now=now,
    )
    signing.sign(document, *_signing_key(now))
    max_age = int(settings.jwks_max_age.total_seconds())
    return Response(
        signing.serialize(document),
        200,
        {
            "Content-Type": "application/samlmetadata+xml",
            "Cache-Control": f"public, max-age={max_age}",
        },
    )


# -- single sign-on -----------------------------------------------------------------------------


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


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_PENDING_SALT)


def _dump(pending: PendingRequest) -> str:
    data: dict[str, Any] = asdict(pending)
    data["received_at"] = pending.received_at.isoformat()
    token: str = _serializer().dumps(data)
    return token


def _load(token: str) -> PendingRequest:
    try:
        data = _serializer().loads(token)
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        data["authn_contexts"] = tuple(data["authn_contexts"])
        return PendingRequest(**data)
    except (BadData, KeyError, TypeError, ValueError):
        raise SamlRequestError(
            "The sign-in link is not valid; start again from the application."
        ) from None


@bp.route("/saml/sso", methods=["GET", "POST"])
def sso() -> ResponseReturnValue:
    message = _receive()
    if message.field != "SAMLRequest":
        raise SamlRequestError("Send an AuthnRequest to this endpoint.")
    authn = requests.parse_authn_request(message.xml)
    g.saml_rp = authn.issuer
    sp = storage.get_service_provider(authn.issuer)
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    acs_url = metadata.select_acs(
        sp.acs_endpoints,
        url=authn.acs_url,
        index=authn.acs_index,
        binding=authn.protocol_binding,
    )
    _verify_signature(sp, message, authn.root, required=sp.authn_requests_signed)
    now = db.now()
    requests.validate_destination(authn.destination, metadata.sso_url(_settings().issuer))
    requests.validate_fresh(authn.issue_instant, now)
    _remember_request("authn", sp.entity_id, authn.id, authn.issue_instant)
    pending = PendingRequest(
        sp=sp.entity_id,
        acs_url=acs_url,
        request_id=authn.id,
        relay_state=message.relay_state,
        force_authn=authn.force_authn,
        is_passive=authn.is_passive,
        name_id_format=authn.name_id_format,
        allow_create=authn.allow_create,
        authn_contexts=authn.authn_contexts,
        comparison=authn.comparison,
        received_at=now,
        nonce=secrets.token_urlsafe(16),
    )
    if request.method == "POST" and sessions.current_login() is None:
        # A cross-site HTTP-POST arrives without the SameSite=Lax cookie: look again from a
        # same-site GET (carrying the signed pending request, not the SAMLRequest) before
        # answering NoPassive or asking for a password the user already gave.
        return redirect(url_for("saml.resume", request=_dump(pending)), 303)
    return _answer(sp, pending, token=None)


@bp.route("/saml/sso/resume")
def resume() -> ResponseReturnValue:
    token = request.args.get("request", "")
    pending = _load(token)
    g.saml_rp = pending.sp
    sp = storage.get_service_provider(pending.sp)
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    if pending.acs_url not in [endpoint["location"] for endpoint in sp.acs_endpoints]:
        raise SamlRequestError("The AssertionConsumerServiceURL is not in the SP's metadata.")
    if db.now() > pending.received_at + PENDING_REQUEST_TTL:
        raise SamlRequestError("The sign-in took too long; start again from the application.")
    return _answer(sp, pending, token=token)


@bp.route("/saml/sso/init")
def idp_initiated() -> ResponseReturnValue:
    sp = storage.get_service_provider(request.args.get("sp", ""))
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    g.saml_rp = sp.entity_id
    relay_state = request.args.get("RelayState")
    bindings.validate_relay_state(relay_state)
    if relay_state is not None and relay_state not in sp.relay_states:
        raise SamlRequestError("This RelayState is not allowed for this service provider.")
    login = sessions.current_login()
    if login is None:
        return sessions.redirect_to_login(next_url=request.full_path)
    pending = PendingRequest(
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
        received_at=db.now(),
        nonce="",
    )
    return _answer(sp, pending, token=None)


def _answer(sp: ServiceProvider, pending: PendingRequest, *, token: str | None) -> Response:
    """Send the browser to log in, or answer the SP (once per pending request)."""
    login = sessions.current_login()
    try:
        stale = login is not None and pending.force_authn and login.auth_time < pending.received_at
        if login is None or stale:
            if pending.is_passive:
                raise SamlStatusError(STATUS_NO_PASSIVE, "The user is not logged in.")
            next_url = url_for("saml.resume", request=token or _dump(pending))
            return sessions.redirect_to_login(next_url=next_url, force=stale)
        if token is not None:
            used = replay.remember_once(
                f"saml:resume:{pending.nonce}", pending.received_at + PENDING_REQUEST_TTL
            )
            if not used:
                raise SamlRequestError("This sign-in was already completed.")
        return _issue(sp, login, pending)
    except SamlStatusError as error:
        return _send_status(sp, pending, error)


def _name_id(
    sp: ServiceProvider, user: User, pending: PendingRequest, now: datetime
) -> tuple[str, str]:
    """Return ``(NameID, Format)`` for this SP, honouring NameIDPolicy (SAML Core §3.4.1.1)."""
    chosen = responses.choose_name_id_format(
        pending.name_id_format, setting=sp.name_id_format, released=sp.attributes
    )
    if chosen == NAMEID_PERSISTENT:
        existing = storage.get_persistent_id(user.id, sp.entity_id)
        if existing is not None:
            return existing, chosen
        if pending.allow_create is False:
            raise SamlStatusError(
                STATUS_INVALID_NAMEID_POLICY, "No identifier exists and AllowCreate is false."
            )
        return storage.create_persistent_id(user.id, sp.entity_id, now), chosen
    if chosen == NAMEID_TRANSIENT:
        # Fresh for every assertion: opaque, linking neither two logins nor two SPs.
        return f"_{secrets.token_hex(20)}", chosen
    # emailAddress and unspecified: the e-mail address, which is the username here.
    return user.email, chosen


def _issue(sp: ServiceProvider, login: LoginSession, pending: PendingRequest) -> Response:
    """Issue, sign (and maybe encrypt) the assertion, record the SessionIndex, POST it."""
    now = db.now()
    user = login.user
    authn_context = responses.choose_authn_context(
        responses.authn_context_of(login.amr, login.acr),
        pending.authn_contexts,
        pending.comparison,
    )
    name_id, name_id_format = _name_id(sp, user, pending, now)
    record = storage.record_session_index(sp, login, name_id, name_id_format, now)
    entity_id = _entity_id()
    assertion = responses.build_assertion(
        idp_entity_id=entity_id,
        sp_entity_id=sp.entity_id,
        acs_url=pending.acs_url,
        in_response_to=pending.request_id,
        name_id=name_id,
        name_id_format=name_id_format,
        session_index=record.session_index,
        authn_instant=login.auth_time,
        authn_context=authn_context,
        session_not_on_or_after=login.expires_at,
        attributes=responses.release_attributes(user, sp.attributes),
        now=now,
    )
    key_pem, cert_pem = _signing_key(now)
    if sp.sign_assertion or sp.want_assertions_signed:
        signing.sign(assertion, key_pem, cert_pem)
    encrypted = sp.encrypt_assertion and bool(sp.encryption_certificates)
    if encrypted:
        assertion = signing.encrypt_assertion(assertion, sp.encryption_certificates[0])
    response = responses.build_response(
        idp_entity_id=entity_id,
        destination=pending.acs_url,
        in_response_to=pending.request_id,
        now=now,
        assertion=assertion,
    )
    if sp.sign_response:
        signing.sign(response, key_pem, cert_pem)
    session_logout.join(login, "saml", sp.entity_id)
    audit.record(
        "assertion_issued",
        user_id=user.id,
        sid=login.sid,
        rp=sp.entity_id,
        name_id_format=name_id_format,
        authn_context=authn_context,
        encrypted=encrypted,
        idp_initiated=pending.request_id is None,
    )
    db.get_session().commit()
    return _post_form(
        pending.acs_url, "SAMLResponse", signing.serialize(response), pending.relay_state
    )


def _send_status(sp: ServiceProvider, pending: PendingRequest, error: SamlStatusError) -> Response:
    """POST a signed error Response to the validated ACS; nothing else is stored."""
    database = db.get_session()
    database.rollback()
    now = db.now()
    response = responses.build_response(
        idp_entity_id=_entity_id(),
        destination=pending.acs_url,
        in_response_to=pending.request_id,
        now=now,
        status=error.status,
        message=str(error),
    )
    signing.sign(response, *_signing_key(now))
    login = sessions.current_login()
    audit.record(
        "saml_request_refused",
        user_id=login.user_id if login else None,
        sid=login.sid if login else None,
        rp=sp.entity_id,
        status=error.status,
        reason=str(error),
    )
    database.commit()
    return _post_form(
        pending.acs_url, "SAMLResponse", signing.serialize(response), pending.relay_state
    )


# -- single logout ------------------------------------------------------------------------------


def _redirect_url(
    location: str, field: str, message: etree._Element, relay_state: str | None
) -> str:
    """Return the HTTP-Redirect URL of ``message``, its query signed (Bindings §3.4.4.1)."""
    key_pem, _ = _signing_key(db.now())
    return bindings.encode_redirect(
        location,
        field,
        signing.serialize(message),
        relay_state,
        signing.RSA_SHA256,
        lambda octets: signing.sign_redirect_query(octets, key_pem),
    )


def _deliver(
    endpoint: tuple[str, str],
    field: str,
    message: etree._Element,
    relay_state: str | None,
    frontchannel_urls: Sequence[str] = (),
) -> Response:
    """Send a signed message to the SP over ``endpoint`` = (binding, URL).

    ``frontchannel_urls`` are loaded in hidden iframes first (logout of other participants).
    """
    binding, location = endpoint
    if binding == BINDING_REDIRECT:
        url = _redirect_url(location, field, message, relay_state)
        if frontchannel_urls:
            page = render_template(
                "sessions/logged_out.html",
                frontchannel_urls=list(frontchannel_urls),
                redirect_to=url,
            )
            return make_response(page, 200)
        return redirect(url, 302)
    signing.sign(message, *_signing_key(db.now()))
    return _post_form(location, field, signing.serialize(message), relay_state, frontchannel_urls)


def _response_endpoint(sp: ServiceProvider, binding: str) -> tuple[str, str] | None:
    endpoint = metadata.select_slo(sp.slo_endpoints, binding)
    if endpoint is None:
        return None
    # SAML Metadata §2.2.2: responses go to ResponseLocation when there is one.
    return str(endpoint["binding"]), str(endpoint["response_location"] or endpoint["location"])


@bp.route("/saml/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    message = _receive()
    if message.field == "SAMLResponse":
        return _logout_response(message)
    logout = requests.parse_logout_request(message.xml)
    g.saml_rp = logout.issuer
    sp = storage.get_service_provider(logout.issuer)
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    # Profiles §4.4.3.1: the requester "MUST authenticate itself ... by signing the
    # <LogoutRequest>" on front-channel bindings, which have no other means.
    _verify_signature(sp, message, logout.root, required=True)
    now = db.now()
    requests.validate_destination(logout.destination, metadata.slo_url(_settings().issuer))
    requests.validate_fresh(logout.issue_instant, now)
    # Skew subtracted from now, not added to a NotOnOrAfter that may be year 9999.
    if logout.not_on_or_after is not None and logout.not_on_or_after <= now - requests.CLOCK_SKEW:
        raise SamlRequestError("The LogoutRequest has expired.")
    _remember_request("logout", sp.entity_id, logout.id, logout.issue_instant)
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
    # The other participants of the session hear of it in hidden iframes (OIDC front-channel,
    # SAML LogoutRequests) before the browser goes back to the SP with its LogoutResponse.
    # OIDC back-channel logout already went out from revoke_login.
    logins = {record.login.id: record.login for record in records}.values()
    urls = [
        url
        for login in logins
        for url in session_logout.front_channel_urls(login, initiator=sp.entity_id)
    ]
    return send_logout_response(
        sp,
        in_response_to=logout.id,
        status=STATUS_SUCCESS if records else STATUS_UNKNOWN_PRINCIPAL,
        binding=message.binding,
        relay_state=message.relay_state,
        frontchannel_urls=urls,
    )


def send_logout_response(
    sp: ServiceProvider,
    *,
    in_response_to: str,
    status: str = STATUS_SUCCESS,
    binding: str | None = None,
    relay_state: str | None = None,
    frontchannel_urls: Sequence[str] = (),
) -> Response:
    """Answer an SP's LogoutRequest with a signed LogoutResponse at its SLO endpoint.

    Without an SLO endpoint, show the signed-out page instead. ``frontchannel_urls`` (the
    other participants) are loaded in hidden iframes before the browser leaves.
    """
    endpoint = _response_endpoint(sp, binding or BINDING_REDIRECT)
    if endpoint is None:
        page: Response = make_response(
            render_template("sessions/logged_out.html", frontchannel_urls=list(frontchannel_urls)),
            200,
        )
        return page
    response = responses.build_logout_response(
        idp_entity_id=_entity_id(),
        destination=endpoint[1],
        in_response_to=in_response_to,
        now=db.now(),
        status=status,
    )
    return _deliver(endpoint, "SAMLResponse", response, relay_state, frontchannel_urls)


def _logout_response(message: InboundMessage) -> ResponseReturnValue:
    """Check an SP's answer to an IdP-initiated LogoutRequest and continue the logout."""
    answer = requests.parse_logout_response(message.xml)
    g.saml_rp = answer.issuer
    sp = storage.get_service_provider(answer.issuer)
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    _verify_signature(sp, message, answer.root, required=True)
    requests.validate_destination(answer.destination, metadata.slo_url(_settings().issuer))
    requests.validate_fresh(answer.issue_instant, db.now())
    audit.record("saml_logout_response", rp=sp.entity_id, status=answer.status)
    db.get_session().commit()
    # The logout that sent the request chose where to go next, as a local path in RelayState.
    if sessions.is_safe_next(message.relay_state):
        return redirect(message.relay_state or "/", 302)
    return render_template("sessions/logged_out.html")


# -- for the cross-protocol logout fan-out ------------------------------------------------------


def _logout_request(
    record: SamlSessionIndex, endpoint: tuple[str, str], reason: str
) -> etree._Element:
    return responses.build_logout_request(
        record.sp,
        record.name_id,
        record.session_index,
        db.now(),
        idp_entity_id=_entity_id(),
        name_id_format=record.name_id_format,
        binding=endpoint[0],
        reason=reason,
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
    message = _logout_request(record, endpoint, reason)
    return _redirect_url(endpoint[1], "SAMLRequest", message, relay_state)


def send_logout_request(
    record: SamlSessionIndex, *, relay_state: str | None = None, reason: str = LOGOUT_REASON_USER
) -> Response | None:
    """Send the browser to the SP of ``record`` with a signed LogoutRequest (Redirect or POST).

    None when the SP registered no SingleLogoutService. The SP answers at /saml/slo, which
    then redirects to ``relay_state`` when it is a local path.
    """
    bindings.validate_relay_state(relay_state)
    endpoint = responses.logout_destination(record.sp)
    if endpoint is None:
        return None
    return _deliver(endpoint, "SAMLRequest", _logout_request(record, endpoint, reason), relay_state)


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
    """Register SAML's part of the shared login: front-channel logout, the SP's name at login."""
    session_logout.get_registry(app).front_channel["saml"] = front_channel_urls
    requesters.register(app, "saml.resume", _sp_name_of_pending)
    requesters.register(app, "saml.idp_initiated", _sp_name_of_initiation)


def _sp_name(entity_id: str) -> str | None:
    sp = storage.get_service_provider(entity_id)
    return sp.name if sp is not None else None


def _sp_name_of_pending(args: MultiDict[str, str]) -> str | None:
    try:
        return _sp_name(_load(args.get("request", "")).sp)
    except SamlRequestError:
        return None


def _sp_name_of_initiation(args: MultiDict[str, str]) -> str | None:
    return _sp_name(args.get("sp", ""))
