"""Single Logout (Profiles §4.4): an SP's signed LogoutRequest ends the login session.

The IdP answers with a signed LogoutResponse and can send LogoutRequests python3-saml accepts.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from idp.saml import storage
from idp.saml.logout import logout_request_url
from tests.conftest import TestUser
from tests.helpers import saml

OTHER = {
    "entity_id": "https://other-sp.example.com/metadata",
    "acs_url": "https://other-sp.example.com/acs",
    "slo_url": "https://other-sp.example.com/slo",
    "key": "other",
}
OTHER_SLO_PREFIX = OTHER["slo_url"] + "?SAMLRequest="


signed_in = saml.signed_in
sp_logout_url = saml.logout_url


def login_state(app: Flask) -> list[bool]:
    with app.app_context():
        logins = db.get_session().scalars(select(LoginSession).order_by(LoginSession.id))
        return [login.revoked_at is None for login in logins]


def test_sp_initiated_logout_ends_the_session_everywhere(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    other = saml.sp_settings(http, **OTHER)
    saml.register(app, other)
    session = signed_in(http, sp)
    signed_in(http, other)
    path, request_id = sp_logout_url(sp, session)
    response = http.get(path)
    # The other SP is signed out in a hidden iframe, then the browser returns to this SP.
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    frames = re.findall(r'<iframe class="frontchannel" src="([^"]+)"', page)
    assert len(frames) == 1 and html.unescape(frames[0]).startswith(OTHER_SLO_PREFIX)
    found = re.search(r'id="continue" href="([^"]+)"', page)
    assert found is not None
    location = html.unescape(found.group(1))
    assert location.startswith(saml.SLO_URL + "?SAMLResponse=")
    answer = saml.sp_auth(sp, location)
    answer.process_slo(request_id=request_id)
    assert answer.get_errors() == [], answer.get_last_error_reason()
    assert login_state(app) == [False]
    # The other SP gets no new assertion without a new login.
    response, _ = saml.sso(http, other)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"
    events = saml.audit_events(app, "saml_logout")
    assert events[-1].rp == saml.SP_ENTITY_ID and events[-1].details["sessions_ended"] == 1


def test_a_signed_post_logout_request_is_accepted(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    request = saml.logout_request(
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        request_id="_post-logout",
    )
    response = http.post(
        "/saml/slo",
        data={"SAMLRequest": base64.b64encode(saml.sign_xml(request)).decode()},
    )
    assert response.status_code == 302
    answer = saml.sp_auth(sp, response.headers["Location"])
    answer.process_slo(request_id="_post-logout")
    assert answer.get_errors() == [], answer.get_last_error_reason()
    assert login_state(app) == [False]


def test_a_logout_request_valid_until_year_9999_is_accepted(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    request = saml.logout_request(
        name_id=session.get_nameid(),
        request_id="_far-future",
        NotOnOrAfter="9999-12-31T23:59:59Z",
    )
    response = http.post(
        "/saml/slo",
        data={"SAMLRequest": base64.b64encode(saml.sign_xml(request)).decode()},
    )
    assert response.status_code == 302
    answer = saml.sp_auth(sp, response.headers["Location"])
    answer.process_slo(request_id="_far-future")
    assert answer.get_errors() == [], answer.get_last_error_reason()
    assert login_state(app) == [False]


def assert_refused_and_logged_in(
    app: Flask, response: Any, before: dict[str, int], message: str
) -> None:
    saml.assert_refused(app, response, before, message)
    assert login_state(app) == [True]  # the session lives on


def test_a_logout_request_with_a_bad_signature_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    before = saml.counts(app)
    path, _ = sp_logout_url(sp, session)
    signature = path.rsplit("&Signature=", 1)[1]
    forged = path.replace(signature, ("A" if signature[0] != "A" else "B") + signature[1:])
    assert_refused_and_logged_in(app, http.get(forged), before, "does not verify")
    attacker = saml.sp_settings(http, key="attacker")
    path, _ = sp_logout_url(attacker, session)
    assert_refused_and_logged_in(app, http.get(path), before, "does not verify")


def test_an_unsigned_logout_request_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    before = saml.counts(app)
    unsigned = saml.sp_settings(http, logoutRequestSigned=False)
    path, _ = sp_logout_url(unsigned, session)
    assert "Signature=" not in path
    assert_refused_and_logged_in(app, http.get(path), before, "must be signed")


def test_a_replayed_logout_request_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], auth: Any, logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    path, _ = sp_logout_url(sp, session)
    assert http.get(path).status_code == 302
    auth.login(logged_in.email, logged_in.password)
    before = saml.counts(app)
    response = http.get(path)
    assert response.status_code == 400
    assert "already used" in html.unescape(response.data.decode())
    assert login_state(app) == [False, True]
    assert saml.counts(app) == before


def test_an_unknown_session_index_is_unknown_principal(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    auth = saml.sp_auth(sp, "https://sp.example.com/logout")
    url = auth.logout(name_id=session.get_nameid(), session_index="_not-a-session")
    response = http.get(url.replace("http://idp.test", ""))
    assert response.status_code == 302
    answer = saml.sp_auth(sp, response.headers["Location"])
    answer.process_slo(request_id=auth.get_last_request_id())
    assert answer.get_errors() == ["logout_not_success"]
    assert login_state(app) == [True]


def test_the_idp_sends_logout_requests_the_sp_accepts(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    """What the cross-protocol logout calls: list_participants + logout_request_url."""
    session = signed_in(http, sp)
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        participants = storage.list_participants(login)
        assert [p.sp_entity_id for p in participants] == [saml.SP_ENTITY_ID]
        url = logout_request_url(participants[0], relay_state="/logout/next")
    assert url is not None and url.startswith(saml.SLO_URL + "?SAMLRequest=")
    sp_side = saml.sp_auth(sp, url)
    back = sp_side.process_slo()
    assert sp_side.get_errors() == [], sp_side.get_last_error_reason()
    request_xml = etree.fromstring(sp_side.get_last_request_xml())
    assert saml.value(request_xml, "saml:NameID") == session.get_nameid()
    assert saml.value(request_xml, "samlp:SessionIndex") == session.get_session_index()
    # The SP answers at /saml/slo; the IdP checks it and continues at RelayState.
    parts = urlsplit(back)
    response = http.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 302 and response.headers["Location"] == "/logout/next"
    assert saml.audit_events(app, "saml_logout_response")[-1].details["status"].endswith(":Success")


def test_send_logout_request_uses_the_sp_binding(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    settings["sp"]["singleLogoutService"]["binding"] = saml.ACS_BINDING_POST
    saml.register(app, settings)
    signed_in(http, settings)
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        response = saml.send_logout_request(storage.list_participants(login)[0])
    assert response is not None
    form = saml.read_form(response)
    assert form.action == saml.SLO_URL
    # python3-saml reads LogoutRequests from the Redirect binding only: check the POST one
    # with its signature validator and the certificate from our metadata.
    xml = base64.b64decode(form.fields["SAMLRequest"])
    assert OneLogin_Saml2_Utils.validate_sign(
        xml,
        OneLogin_Saml2_Utils.format_cert(settings["idp"]["x509cert"]),
        xpath="/samlp:LogoutRequest/ds:Signature",
        raise_exceptions=True,
    )
    root = etree.fromstring(xml)
    assert root.tag == f"{{{saml.NS['samlp']}}}LogoutRequest"
    assert root.get("Destination") == saml.SLO_URL
    reference = root.xpath("ds:Signature/ds:SignedInfo/ds:Reference/@URI", namespaces=saml.NS)
    assert reference == ["#" + root.get("ID")]


def test_logout_requests_from_strangers_or_too_late_are_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    session = signed_in(http, sp)
    before = saml.counts(app)
    stranger = saml.logout_request(
        name_id=session.get_nameid(), issuer="https://stranger.example.com/metadata"
    )
    response = http.post(
        "/saml/slo", data={"SAMLRequest": base64.b64encode(saml.sign_xml(stranger)).decode()}
    )
    assert_refused_and_logged_in(app, response, before, "not registered")
    late = saml.logout_request(name_id=session.get_nameid(), NotOnOrAfter="2001-01-01T00:00:00Z")
    response = http.post(
        "/saml/slo", data={"SAMLRequest": base64.b64encode(saml.sign_xml(late)).decode()}
    )
    assert_refused_and_logged_in(app, response, before, "has expired")


def test_without_an_slo_endpoint_the_sp_sees_the_signed_out_page(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    metadata = saml.sp_metadata(settings)
    root = etree.fromstring(metadata)
    for element in root.xpath("//md:SingleLogoutService", namespaces=saml.NS):
        element.getparent().remove(element)
    from idp.saml.registration import register_sp_metadata

    with app.app_context():
        register_sp_metadata(etree.tostring(root))
    session = signed_in(http, settings)
    request = saml.logout_request(
        name_id=session.get_nameid(), session_index=session.get_session_index()
    )
    response = http.post(
        "/saml/slo", data={"SAMLRequest": base64.b64encode(saml.sign_xml(request)).decode()}
    )
    assert response.status_code == 200
    assert response.mimetype == "text/html" and "signed out" in response.data.decode()
    assert login_state(app) == [False]
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        [participant] = storage.list_participants(login)
        assert logout_request_url(participant) is None
        assert saml.send_logout_request(participant) is None


def test_a_forged_logout_response_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    signed_in(http, sp)
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        url = logout_request_url(storage.list_participants(login)[0])
    assert url is not None
    attacker = saml.sp_settings(http, key="attacker")
    sp_side = saml.sp_auth(attacker, url)
    sp_side.set_strict(False)  # the attacker's SP does not care whose request it answers
    back = urlsplit(sp_side.process_slo())
    before = saml.counts(app)
    response = http.get(f"{back.path}?{back.query}")
    assert_refused_and_logged_in(app, response, before, "does not verify")


def test_front_channel_urls_reach_every_other_saml_sp(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    """The FrontChannel hook of the cross-protocol logout, for the SAML participants."""
    from idp.sessions import logout as session_logout

    other = saml.sp_settings(http, **OTHER)
    saml.register(app, other)
    signed_in(http, sp)
    other_session = signed_in(http, other)
    with app.test_request_context():
        login = db.get_session().scalar(select(LoginSession))
        joined = [p for p in session_logout.participants(login) if p.protocol == "saml"]
        assert sorted(p.rp for p in joined) == sorted([saml.SP_ENTITY_ID, OTHER["entity_id"]])
        urls = session_logout.front_channel_urls(login, initiator=saml.SP_ENTITY_ID)
    assert len(urls) == 1 and urls[0].startswith(OTHER["slo_url"] + "?SAMLRequest=")
    sp_side = saml.sp_auth(other, urls[0])
    sp_side.process_slo()
    assert sp_side.get_errors() == [], sp_side.get_last_error_reason()
    request_xml = etree.fromstring(sp_side.get_last_request_xml())
    assert saml.value(request_xml, "samlp:SessionIndex") == other_session.get_session_index()


def test_a_post_binding_logout_still_signs_out_the_other_participants(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    # An SP whose only SLO endpoint is HTTP-POST gets its LogoutResponse by a form, and the
    # page that carries the form first frames the other participants' logout.
    from idp import db
    from idp.saml import storage

    other = saml.sp_settings(http, **OTHER)
    saml.register(app, other)
    with app.app_context():
        row = storage.get_service_provider(saml.SP_ENTITY_ID)
        assert row is not None
        row.slo_endpoints = [
            {**endpoint, "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"}
            for endpoint in row.slo_endpoints
        ]
        db.get_session().commit()
    session = signed_in(http, sp)
    signed_in(http, other)
    request = saml.logout_request(
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        request_id="_post-logout-2",
    )
    response = http.post(
        "/saml/slo",
        data={"SAMLRequest": base64.b64encode(saml.sign_xml(request)).decode()},
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    frames = re.findall(r'<iframe class="frontchannel" src="([^"]+)"', page)
    assert len(frames) == 1 and html.unescape(frames[0]).startswith(OTHER_SLO_PREFIX)
    assert 'id="saml-post"' in page and 'name="SAMLResponse"' in page
    # static/continue.js submits the form marked data-autosubmit once the frames have loaded.
    assert '<form id="saml-post" method="post" action="' in page and "data-autosubmit" in page
    assert page.index("<iframe") < page.index("/static/continue.js")
    assert login_state(app) == [False]
