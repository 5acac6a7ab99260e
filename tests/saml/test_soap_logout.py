"""SAML back-channel logout: signed LogoutRequests over SOAP (Bindings §3.2, Profiles §4.4).

A real loopback SOAP receiver plays the SP; python3-saml checks what it receives.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from idp.saml.logout import is_reachable_without_browser
from idp.sessions import logout as session_logout
from idp.sessions.logout import RETRY_WINDOW
from idp.sessions.logout import deliver_due
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml
from tests.helpers.cli import run

OTHER = {
    "entity_id": "https://other-sp.example.com/metadata",
    "acs_url": "https://other-sp.example.com/acs",
    "slo_url": "https://other-sp.example.com/slo",
    "key": "other",
}
LOGOUT_REQUEST_SIGNATURE = "/samlp:LogoutRequest/ds:Signature"


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver(answer=saml.soap_logout_answer()) as server:
        yield server


@pytest.fixture
def soap_sp(app: Flask, http: FlaskClient, receiver: rx.Receiver) -> dict[str, Any]:
    """A python3-saml SP whose metadata lists a SOAP SingleLogoutService at ``receiver``."""
    settings = saml.sp_settings(http)
    saml.register_soap_sp(app, settings, receiver.endpoint("/saml/soap"))
    return settings


def the_sid(app: Flask) -> str:
    with app.app_context():
        (sid,) = db.get_session().scalars(select(LoginSession.sid)).all()
        return sid


def is_live(app: Flask) -> bool:
    with app.app_context():
        (login,) = db.get_session().scalars(select(LoginSession)).all()
        return login.revoked_at is None


def received_logout_request(
    settings: dict[str, Any], post: rx.Received, session: Any
) -> etree._Element:
    """Check one SOAP LogoutRequest as the SP would: signature, NameID, SessionIndex."""
    assert post.path == "/saml/soap"
    assert post.content_type.startswith("text/xml")
    assert post.headers["SOAPAction"] == "http://www.oasis-open.org/committees/security"
    message = saml.soap_message(post.body)
    xml = etree.tostring(message)
    # python3-saml's validator, with the certificate from our /saml/metadata.
    assert OneLogin_Saml2_Utils.validate_sign(
        xml,
        OneLogin_Saml2_Utils.format_cert(settings["idp"]["x509cert"]),
        xpath=LOGOUT_REQUEST_SIGNATURE,
        raise_exceptions=True,
    )
    assert OneLogin_Saml2_Logout_Request.get_issuer(xml) == saml.IDP_ENTITY_ID
    assert OneLogin_Saml2_Logout_Request.get_nameid(xml) == session.get_nameid()
    assert OneLogin_Saml2_Logout_Request.get_session_indexes(xml) == [session.get_session_index()]
    return message


def test_idp_session_revoke_sends_a_signed_soap_logout_request(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    receiver: rx.Receiver,
    logged_in: TestUser,
    clock: Clock,
) -> None:
    session = saml.signed_in(http, soap_sp)
    assert receiver.received == []

    result = run(app, "session", "revoke", the_sid(app))

    assert result.exit_code == 0, result.output
    (post,) = receiver.received
    message = received_logout_request(soap_sp, post, session)
    assert message.get("Destination") == receiver.endpoint("/saml/soap")
    assert message.get("Reason") == "urn:oasis:names:tc:SAML:2.0:logout:admin"
    (delivery,) = rx.deliveries(app)
    assert (delivery.protocol, delivery.rp) == ("saml", saml.SP_ENTITY_ID)
    assert delivery.attempts == 1 and delivery.delivered_at == clock.now
    (audited,) = rx.audit_events(app, "backchannel_logout_delivered")
    assert audited.rp == saml.SP_ENTITY_ID and audited.user_id == logged_in.id
    assert audited.details["protocol"] == "saml"
    # The SP gets no assertion without a new login.
    response, _ = saml.sso(http, soap_sp)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def test_a_receiver_that_fails_once_gets_it_on_retry(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    receiver: rx.Receiver,
    logged_in: TestUser,
    clock: Clock,
) -> None:
    session = saml.signed_in(http, soap_sp)
    receiver.fail_next = 1

    assert run(app, "session", "revoke", the_sid(app)).exit_code == 0

    assert len(receiver.received) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is None and delivery.last_error == "HTTP 500"
    (failed,) = rx.audit_events(app, "backchannel_logout_failed")
    assert failed.details["error"] == "HTTP 500" and failed.details["protocol"] == "saml"
    with app.app_context():
        assert deliver_due() == 0  # its back-off has not passed
    clock.advance(seconds=5)
    with app.app_context():
        assert deliver_due() == 1
    first, second = receiver.received
    received_logout_request(soap_sp, second, session)
    # Each attempt is a fresh message, signed again.
    assert saml.soap_message(first.body).get("ID") != saml.soap_message(second.body).get("ID")
    (delivery,) = rx.deliveries(app)
    assert delivery.attempts == 2 and delivery.delivered_at == clock.now


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (saml.soap_logout_answer("urn:oasis:names:tc:SAML:2.0:status:Responder"), "status"),
        (lambda body: b"<not-soap/>", "bad LogoutResponse"),
        (
            lambda body: saml.soap_logout_answer()(saml.soap_envelope(b'<x ID="_other"/>')),
            "another",
        ),
    ],
    ids=["responder-status", "not-soap", "answers-another-request"],
)
def test_an_unsuccessful_logout_response_is_not_a_delivery(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    receiver: rx.Receiver,
    logged_in: TestUser,
    answer: Any,
    error: str,
) -> None:
    saml.signed_in(http, soap_sp)
    receiver.answer = answer

    assert run(app, "session", "revoke", the_sid(app)).exit_code == 0

    assert len(receiver.received) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is None and delivery.next_attempt_at is not None
    assert delivery.last_error is not None and error in delivery.last_error
    assert rx.audit_events(app, "backchannel_logout_delivered") == []


def test_a_slow_receiver_is_abandoned_within_the_deadline(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    receiver: rx.Receiver,
    logged_in: TestUser,
    clock: Clock,
) -> None:
    saml.signed_in(http, soap_sp)
    receiver.delay = 10.0

    started = time.monotonic()
    assert run(app, "session", "revoke", the_sid(app)).exit_code == 0
    # One 2 s deadline for the whole exchange, then the command returns.
    assert time.monotonic() - started < 4.0
    (delivery,) = rx.deliveries(app)
    assert delivery.last_error == "timed out" and delivery.delivered_at is None
    clock.advance(seconds=RETRY_WINDOW.total_seconds())
    started = time.monotonic()
    with app.app_context():
        assert deliver_due() == 1
    assert time.monotonic() - started < 4.0
    (delivery,) = rx.deliveries(app)
    assert delivery.failed_at == clock.now and delivery.next_attempt_at is None
    (abandoned,) = rx.audit_events(app, "backchannel_logout_abandoned")
    assert abandoned.rp == saml.SP_ENTITY_ID and abandoned.details["error"] == "timed out"


def test_the_sp_that_asked_for_logout_is_not_sent_one(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    logged_in: TestUser,
) -> None:
    """Profiles §4.4.3.3: the requester already knows; another SOAP SP is told, no iframe."""
    with rx.running_receiver(answer=saml.soap_logout_answer(issuer=OTHER["entity_id"])) as other:
        other_settings = saml.sp_settings(http, **OTHER)
        saml.register_soap_sp(app, other_settings, other.endpoint("/saml/soap"))
        session = saml.signed_in(http, soap_sp)
        other_session = saml.signed_in(http, other_settings)
        path, _ = saml.logout_url(soap_sp, session)

        response = http.get(path)

        # SOAP SPs are told by back-channel: no iframe page, straight back to the requester.
        assert response.status_code == 302
        assert response.headers["Location"].startswith(saml.SLO_URL + "?SAMLResponse=")
        (post,) = other.received
        received_logout_request(other_settings, post, other_session)
    assert [row.rp for row in rx.deliveries(app)] == [OTHER["entity_id"]]
    assert not is_live(app)


def test_an_http_post_sp_gets_a_front_channel_page_that_posts_the_request(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    post_sp = saml.sp_settings(http, **OTHER)
    post_sp["sp"]["singleLogoutService"]["binding"] = saml.ACS_BINDING_POST
    saml.register(app, post_sp)
    session = saml.signed_in(http, sp)
    post_session = saml.signed_in(http, post_sp)
    path, _ = saml.logout_url(sp, session)

    page = http.get(path).get_data(as_text=True)

    frames = [html.unescape(url) for url in re.findall(r'class="frontchannel" src="([^"]+)"', page)]
    assert len(frames) == 1 and frames[0].startswith("http://idp.test/saml/slo/post?request=")
    frame = http.get(frames[0].removeprefix("http://idp.test"))
    assert frame.status_code == 200
    # Framed by the IdP's own logged-out page, by no one else.
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame.headers["Content-Security-Policy"]
    assert frame.headers["Cache-Control"] == "no-store"
    form = saml.read_form(frame)
    assert form.action == OTHER["slo_url"]
    xml = base64.b64decode(form.fields["SAMLRequest"])
    assert OneLogin_Saml2_Utils.validate_sign(
        xml,
        OneLogin_Saml2_Utils.format_cert(post_sp["idp"]["x509cert"]),
        xpath=LOGOUT_REQUEST_SIGNATURE,
        raise_exceptions=True,
    )
    assert OneLogin_Saml2_Logout_Request.get_nameid(xml) == post_session.get_nameid()
    assert OneLogin_Saml2_Logout_Request.get_session_indexes(xml) == [
        post_session.get_session_index()
    ]


def test_the_post_page_is_only_for_ended_sessions_and_our_links(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    from idp.saml import logout
    from idp.saml import storage

    post_sp = saml.sp_settings(http)
    post_sp["sp"]["singleLogoutService"]["binding"] = saml.ACS_BINDING_POST
    saml.register(app, post_sp)
    saml.signed_in(http, post_sp)
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        url = logout.post_frame_url(storage.list_participants(login)[0])
    live = http.get(urlsplit(url).path + "?" + urlsplit(url).query)
    assert live.status_code == 400 and "not valid" in live.get_data(as_text=True)
    forged = http.get("/saml/slo/post?request=" + urlsplit(url).query[-20:])
    assert forged.status_code == 400
    assert is_live(app)


def test_sp_initiated_soap_logout_gets_a_signed_soap_logout_response(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = saml.signed_in(http, sp)
    request = saml.logout_request(
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        destination=saml.IDP_SOAP_SLO_URL,
    )

    response = http.post(
        "/saml/slo/soap",
        data=saml.soap_envelope(saml.sign_xml(request)),
        headers={
            "Content-Type": "text/xml",
            "SOAPAction": "http://www.oasis-open.org/committees/security",
        },
    )

    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    answer = saml.soap_message(response.data)
    xml = etree.tostring(answer)
    assert OneLogin_Saml2_Utils.validate_sign(
        xml,
        OneLogin_Saml2_Utils.format_cert(sp["idp"]["x509cert"]),
        xpath="/samlp:LogoutResponse/ds:Signature",
        raise_exceptions=True,
    )
    assert answer.get("InResponseTo") == request.get("ID")
    assert saml.value(answer, "samlp:Status/samlp:StatusCode/@Value") == saml.SUCCESS
    assert not is_live(app)


HOSTILE = {
    "not-xml": b"\x00\xff not xml",
    "doctype": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    + b"<x>&e;</x>",
    "not-soap": b"<Envelope><Body/></Envelope>",
    "two-messages": saml.soap_envelope(b"<a/><b/>"),
    "not-a-logout-request": saml.soap_envelope(b"<samlp:LogoutRequest xmlns:samlp='x'/>"),
    "huge": saml.soap_envelope(b"<a>" + b"x" * 200_000 + b"</a>"),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_soap_gets_a_soap_fault_and_changes_nothing(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser, body: bytes
) -> None:
    saml.signed_in(http, sp)
    before = saml.counts(app)

    response = http.post("/saml/slo/soap", data=body, headers={"Content-Type": "text/xml"})

    assert_fault(app, response, before)


def test_an_unsigned_or_forged_soap_logout_request_gets_a_fault(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = saml.signed_in(http, sp)
    before = saml.counts(app)
    request = saml.logout_request(
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        destination=saml.IDP_SOAP_SLO_URL,
    )
    for body in (etree.tostring(request), saml.sign_xml(request, key="attacker")):
        response = http.post("/saml/slo/soap", data=saml.soap_envelope(body))
        assert_fault(app, response, before)


def assert_fault(app: Flask, response: Any, before: dict[str, int]) -> None:
    assert response.status_code == 400
    assert response.mimetype == "text/xml"
    fault = saml.soap_message(response.data)
    assert fault.tag == f"{{{saml.NS_SOAP}}}Fault"
    assert fault.findtext("faultcode") == "SOAP-ENV:Client"
    assert saml.counts(app) == before
    assert is_live(app)


def test_the_registration_keeps_the_soap_location_and_says_who_is_reachable(
    app: Flask,
    http: FlaskClient,
    soap_sp: dict[str, Any],
    logged_in: TestUser,
    receiver: rx.Receiver,
) -> None:
    from idp.saml import storage

    front_only = saml.sp_settings(http, **OTHER)
    saml.register(app, front_only)
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint("/bc"))
    front_client = oidc.register(app)
    saml.signed_in(http, soap_sp)
    saml.signed_in(http, front_only)
    oidc.issue_tokens(http, client)
    oidc.issue_tokens(http, front_client)
    with app.test_request_context():
        registered = storage.find_service_provider(saml.SP_ENTITY_ID)
        assert registered is not None
        assert {
            "binding": saml.SOAP,
            "location": receiver.endpoint("/saml/soap"),
            "response_location": None,
        } in registered.slo_endpoints
        assert is_reachable_without_browser(saml.SP_ENTITY_ID) is True
        assert is_reachable_without_browser(OTHER["entity_id"]) is False
        assert is_reachable_without_browser("https://unknown.example.com") is False
        login = db.get_session().scalar(select(LoginSession))
        reachable = {
            p.rp: session_logout.is_reachable_without_browser(p)
            for p in session_logout.participants(login)
        }
    assert reachable == {
        saml.SP_ENTITY_ID: True,
        OTHER["entity_id"]: False,
        client.client_id: True,
        front_client.client_id: False,
    }
    # The session object of `idp session list --json` (and so of the admin API) says it too.
    (listed,) = json.loads(run(app, "session", "list", "--json").output)
    assert {
        item["rp"]: item["reachable_without_browser"] for item in listed["participants"]
    } == reachable
