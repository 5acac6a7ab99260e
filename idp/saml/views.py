"""SAML endpoints: /saml/metadata, /saml/sso (+ IdP-initiated), /saml/slo (+ SOAP, Profiles §4.4).

HTTP only: the protocol lives in pending.py, issuance.py and logout.py. Hostile or
unaddressable requests get an HTML 400 here; errors with a validated SP and ACS go back to the
ACS as a signed Response with a status (CONTRIBUTING.md, "Where code goes").

Over 400 lines by a few: the SOAP single-logout endpoint joined the three bindings' views, and
SSO asks for a second factor when an SP's RequestedAuthnContext wants one.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Blueprint
from flask import Flask
from flask import g
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from lxml import etree
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from idp import audit
from idp import db
from idp import headers as idp_headers
from idp.errors import SamlRequestError
from idp.errors import SamlStatusError
from idp.keys.store import get_key_store
from idp.mfa import pending as second_step
from idp.mfa import service as mfa
from idp.models.saml import ServiceProvider
from idp.saml import BINDING_POST
from idp.saml import BINDING_REDIRECT
from idp.saml import BINDING_SOAP
from idp.saml import LOGOUT_REASON_USER
from idp.saml import STATUS_NO_PASSIVE
from idp.saml import STATUS_SUCCESS
from idp.saml import bindings
from idp.saml import inbound
from idp.saml import issuance
from idp.saml import logout
from idp.saml import metadata
from idp.saml import requests
from idp.saml import responses
from idp.saml import signing
from idp.saml import storage
from idp.saml.bindings import InboundMessage
from idp.saml.pending import PendingRequest
from idp.saml.pending import build_idp_initiated
from idp.saml.pending import build_pending
from idp.saml.pending import dump_pending
from idp.saml.pending import parse_pending
from idp.saml.pending import remember_answered
from idp.saml.pending import validate_idp_initiated
from idp.saml.pending import validate_resumable
from idp.sessions import requesters
from idp.sessions import service as sessions
from idp.settings import get_settings

bp = Blueprint("saml", __name__)
_SOAP_HEADERS = {"Content-Type": bindings.SOAP_CONTENT_TYPE, "Cache-Control": "no-store"}


def _entity_id() -> str:
    return metadata.idp_entity_id(get_settings().issuer)


def _record_refusal(error: SamlRequestError) -> None:
    database = db.get_session()
    database.rollback()  # nothing of a refused request is kept, except the audit line
    audit.record("saml_request_refused", rp=g.get("saml_rp"), reason=str(error))
    database.commit()


@bp.errorhandler(SamlRequestError)
def _refused(error: SamlRequestError) -> ResponseReturnValue:
    _record_refusal(error)
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
    *,
    framable: bool = False,
) -> Response:
    page = render_template(
        "saml/post_form.html",
        action=action,
        field=field,
        value=bindings.encode_post(xml),
        relay_state=relay_state,
        frontchannel_urls=list(frontchannel_urls),
    )
    # The page may carry a bearer assertion: never cached, never framed. A LogoutRequest's
    # page is framed by the IdP's own logged-out page (front-channel logout).
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if framable:
        idp_headers.allow_framing_by_self()
    response: Response = make_response(page, 200, headers)  # text/html, as Flask's default
    return response


def _receive() -> InboundMessage:
    if request.method == "POST":
        return bindings.decode_post(request.form.to_dict(flat=False))
    return bindings.decode_redirect(request.query_string)


def _require_sp(entity_id: str) -> ServiceProvider:
    sp = storage.get_service_provider(entity_id)
    if sp is None:
        raise SamlRequestError("The service provider is not registered here.")
    return sp


# -- metadata -----------------------------------------------------------------------------------


@bp.route("/saml/metadata")
def idp_metadata() -> ResponseReturnValue:
    now = db.now()
    settings = get_settings()
    document = metadata.build_idp_metadata(
        issuer=settings.issuer,
        certificates=[pem for _, pem in get_key_store().saml_certificates(now)],
        cache_duration=settings.jwks_max_age,
        now=now,
    )
    signing.sign(document, *signing.signing_key(now))
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


@bp.route("/saml/sso", methods=["GET", "POST"])
def sso() -> ResponseReturnValue:
    message = _receive()
    if message.field != "SAMLRequest":
        raise SamlRequestError("Send an AuthnRequest to this endpoint.")
    authn = requests.parse_authn_request(message.xml)
    g.saml_rp = authn.issuer
    sp = _require_sp(authn.issuer)
    acs_url = metadata.select_acs(
        sp.acs_endpoints,
        url=authn.acs_url,
        index=authn.acs_index,
        binding=authn.protocol_binding,
    )
    inbound.verify_signature(sp, message, authn.root, required=sp.authn_requests_signed)
    now = db.now()
    inbound.validate_received(
        destination=authn.destination,
        issue_instant=authn.issue_instant,
        endpoint=metadata.sso_url(get_settings().issuer),
        now=now,
    )
    inbound.remember_request("authn", sp.entity_id, authn.id, authn.issue_instant)
    pending = build_pending(authn, sp=sp, acs_url=acs_url, relay_state=message.relay_state, now=now)
    if request.method == "POST" and sessions.current_login() is None:
        # A cross-site HTTP-POST arrives without the SameSite=Lax cookie: look again from a
        # same-site GET (carrying the signed pending request, not the SAMLRequest) before
        # answering NoPassive or asking for a password the user already gave.
        return redirect(url_for("saml.resume", request=dump_pending(pending)), 303)
    return _answer(sp, pending, token=None)


@bp.route("/saml/sso/resume")
def resume() -> ResponseReturnValue:
    token = request.args.get("request", "")
    pending = parse_pending(token)
    g.saml_rp = pending.sp
    sp = _require_sp(pending.sp)
    validate_resumable(pending, sp, db.now())
    return _answer(sp, pending, token=token)


@bp.route("/saml/sso/init")
def idp_initiated() -> ResponseReturnValue:
    sp = _require_sp(request.args.get("sp", ""))
    g.saml_rp = sp.entity_id
    relay_state = request.args.get("RelayState")
    validate_idp_initiated(sp, relay_state)
    if sessions.current_login() is None:
        return sessions.redirect_to_login(next_url=request.full_path)
    return _answer(sp, build_idp_initiated(sp, relay_state=relay_state, now=db.now()), token=None)


def _answer(sp: ServiceProvider, pending: PendingRequest, *, token: str | None) -> Response:
    """Send the browser to log in, or answer the SP (once per pending request)."""
    login = sessions.current_login()
    try:
        stale = login is not None and pending.needs_fresh_login(login)
        if login is None or stale:
            if pending.is_passive:
                raise SamlStatusError(STATUS_NO_PASSIVE, "The user is not logged in.")
            next_url = url_for("saml.resume", request=token or dump_pending(pending))
            return sessions.redirect_to_login(next_url=next_url, force=stale)
        if (
            not pending.is_passive
            and issuance.needs_step_up(login, pending)
            and mfa.has_second_factor(login.user)
        ):
            # The SP asks for MFA (RequestedAuthnContext) in a password-only session: ask for
            # the second factor, not the password again, and answer after it. Without a
            # factor, issuance answers NoAuthnContext.
            next_url = url_for("saml.resume", request=token or dump_pending(pending))
            return second_step.ask_step_up(login, next_url=next_url)
        if token is not None:
            remember_answered(pending)
        xml = issuance.issue_response(sp, login, pending, idp_entity_id=_entity_id())
    except SamlStatusError as error:
        xml = issuance.issue_status_response(sp, pending, error, idp_entity_id=_entity_id())
    return _post_form(pending.acs_url, "SAMLResponse", xml, pending.relay_state)


# -- single logout ------------------------------------------------------------------------------


def deliver(
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
        url = logout.redirect_url(location, field, message, relay_state)
        if frontchannel_urls:
            page = render_template(
                "sessions/logged_out.html",
                frontchannel_urls=list(frontchannel_urls),
                redirect_to=url,
            )
            return make_response(page, 200)
        return redirect(url, 302)
    signing.sign(message, *signing.signing_key(db.now()))
    return _post_form(location, field, signing.serialize(message), relay_state, frontchannel_urls)


@bp.route("/saml/slo", methods=["GET", "POST"])
def slo() -> ResponseReturnValue:
    message = _receive()
    if message.field == "SAMLResponse":
        return _logout_response(message)
    logout_request, sp = _accept_logout_request(message, metadata.slo_url(get_settings().issuer))
    status, urls = logout.end_sessions(sp, logout_request)
    # The other participants of the session hear of it in hidden iframes (OIDC front-channel,
    # SAML LogoutRequests) before the browser goes back to the SP with its LogoutResponse.
    return _send_logout_response(
        sp,
        in_response_to=logout_request.id,
        status=status,
        binding=message.binding,
        relay_state=message.relay_state,
        frontchannel_urls=urls,
    )


@bp.route("/saml/slo/post")
def slo_post_frame() -> ResponseReturnValue:
    """POST a signed LogoutRequest to an SP with HTTP-POST SLO only, from a front-channel iframe."""
    record = logout.require_post_frame_record(request.args.get("request", ""))
    g.saml_rp = record.sp_entity_id
    endpoint = responses.logout_destination(record.sp, BINDING_POST)
    if endpoint is None or endpoint[0] != BINDING_POST:
        raise SamlRequestError("The service provider has no HTTP-POST SingleLogoutService.")
    now = db.now()
    message = logout.build_request_to(record, endpoint, LOGOUT_REASON_USER, now)
    signing.sign(message, *signing.signing_key(now))
    return _post_form(endpoint[1], "SAMLRequest", signing.serialize(message), None, framable=True)


@bp.route("/saml/slo/soap", methods=["POST"])
def slo_soap() -> ResponseReturnValue:
    """Answer an SP's SOAP LogoutRequest with a signed LogoutResponse (Bindings §3.2).

    No browser is there: what the request cannot be (hostile, unsigned, from a stranger) gets a
    SOAP fault, and the session's front-channel-only participants are not reached.
    """
    try:
        message = InboundMessage(
            BINDING_SOAP,
            "SAMLRequest",
            bindings.decode_soap(request.stream.read(bindings.MAX_XML_BYTES + 1)),
            None,
        )
        endpoint = metadata.soap_slo_url(get_settings().issuer)
        logout_request, sp = _accept_logout_request(message, endpoint)
    except SamlRequestError as error:
        _record_refusal(error)
        return Response(bindings.encode_soap_fault(str(error)), 400, _SOAP_HEADERS)
    status, _frontchannel_urls = logout.end_sessions(sp, logout_request)
    answer = logout.build_soap_response(in_response_to=logout_request.id, status=status)
    return Response(answer, 200, _SOAP_HEADERS)


def _accept_logout_request(
    message: InboundMessage, endpoint: str
) -> tuple[requests.LogoutRequest, ServiceProvider]:
    """Parse an SP's LogoutRequest received at ``endpoint`` and check it; remember its ID.

    Raises:
        SamlRequestError: hostile, unsigned, misaddressed, stale or replayed.

    """
    logout_request = requests.parse_logout_request(message.xml)
    g.saml_rp = logout_request.issuer
    sp = _require_sp(logout_request.issuer)
    # Profiles §4.4.3.1: the requester "MUST authenticate itself ... by signing the
    # <LogoutRequest>"; front-channel bindings have no other means, and without TLS client
    # authentication neither has SOAP.
    inbound.verify_signature(sp, message, logout_request.root, required=True)
    now = db.now()
    inbound.validate_received(
        destination=logout_request.destination,
        issue_instant=logout_request.issue_instant,
        endpoint=endpoint,
        now=now,
    )
    logout.validate_not_expired(logout_request, now)
    inbound.remember_request(
        "logout", sp.entity_id, logout_request.id, logout_request.issue_instant
    )
    return logout_request, sp


def _send_logout_response(
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
    endpoint = logout.response_endpoint(sp, binding or BINDING_REDIRECT)
    if endpoint is None:
        page: Response = make_response(
            render_template("sessions/logged_out.html", frontchannel_urls=list(frontchannel_urls)),
            200,
        )
        return page
    response = logout.build_response_to(
        endpoint, in_response_to=in_response_to, status=status, now=db.now()
    )
    return deliver(endpoint, "SAMLResponse", response, relay_state, frontchannel_urls)


def _logout_response(message: InboundMessage) -> ResponseReturnValue:
    """Check an SP's answer to an IdP-initiated LogoutRequest and continue the logout."""
    answer = requests.parse_logout_response(message.xml)
    g.saml_rp = answer.issuer
    sp = _require_sp(answer.issuer)
    inbound.verify_signature(sp, message, answer.root, required=True)
    inbound.validate_received(
        destination=answer.destination,
        issue_instant=answer.issue_instant,
        endpoint=metadata.slo_url(get_settings().issuer),
        now=db.now(),
    )
    logout.record_logout_response(sp, answer)
    # The logout that sent the request chose where to go next, as a local path in RelayState.
    if sessions.is_safe_next(message.relay_state):
        return redirect(message.relay_state or "/", 302)
    return render_template("sessions/logged_out.html")


# -- the shared login ---------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Register SAML's part of the shared login: front-channel logout, the SP's name at login."""
    logout.init_app(app)
    requesters.register(app, "saml.resume", _sp_name_of_pending)
    requesters.register(app, "saml.idp_initiated", _sp_name_of_initiation)


def _sp_name(entity_id: str) -> str | None:
    sp = storage.get_service_provider(entity_id)
    return sp.name if sp is not None else None


def _sp_name_of_pending(args: MultiDict[str, str]) -> str | None:
    try:
        return _sp_name(parse_pending(args.get("request", "")).sp)
    except SamlRequestError:
        return None


def _sp_name_of_initiation(args: MultiDict[str, str]) -> str | None:
    return _sp_name(args.get("sp", ""))
