"""One login, one logout, every app: OIDC clients and SAML SPs share one login session.

SAML SPs are played by python3-saml, OIDC tokens are checked with PyJWT against /jwks, and
back-channel logout tokens are caught by a real loopback HTTP server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from sqlalchemy import select

from idp import db
from idp.models import SamlSessionIndex
from idp.models.login import SessionParticipant
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml

LEDGER = {
    "entity_id": "https://ledger.example.com/metadata",
    "acs_url": "https://ledger.example.com/acs",
    "slo_url": "https://ledger.example.com/slo",
    "key": "ledger",
}
WIKI_FC = "https://wiki.example.com/frontchannel"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


@pytest.fixture
def payroll(app: Flask, http: FlaskClient) -> dict[str, Any]:
    """A python3-saml SP (https://sp.example.com) registered from its own metadata."""
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    return settings


@pytest.fixture
def ledger(app: Flask, http: FlaskClient) -> dict[str, Any]:
    """A second python3-saml SP, with its own keys."""
    settings = saml.sp_settings(http, **LEDGER)
    saml.register(app, settings)
    return settings


@pytest.fixture
def notes(app: Flask, receiver: rx.Receiver) -> oidc.Client:
    """An OIDC client with back-channel logout."""
    return oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint("/notes"))


@pytest.fixture
def wiki(app: Flask) -> oidc.Client:
    """An OIDC client with front-channel logout."""
    return oidc.register(app, "Wiki", frontchannel_logout_uri=WIKI_FC)


# Helpers ---------------------------------------------------------------------------------------


def saml_sign_in(http: FlaskClient, settings: dict[str, Any]) -> Any:
    """Sign in to the SP in a browser that is already logged in: no login page in between."""
    response, request_id = saml.sso(http, settings)
    assert response.status_code == 200, response.headers.get("Location")
    session = saml.process_response(settings, saml.read_form(response), request_id)
    assert session.get_errors() == [], session.get_last_error_reason()
    return session


def sp_logout_url(settings: dict[str, Any], session: Any) -> tuple[str, str]:
    """Have the SP build its signed Redirect LogoutRequest; return (IdP path+query, ID)."""
    auth = saml.sp_auth(settings, "https://sp.example.com/logout")
    url = auth.logout(
        name_id=session.get_nameid(),
        session_index=session.get_session_index(),
        name_id_format=session.get_nameid_format(),
        nq=session.get_nameid_nq(),
        spnq=session.get_nameid_spnq(),
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == saml.IDP_SLO_URL
    assert "Signature=" in parts.query
    return f"{parts.path}?{parts.query}", auth.get_last_request_id()


def local(url: str) -> str:
    """Return the path and query of a URL on the IdP, as a browser would request it."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://idp.test", url
    return f"{parts.path}?{parts.query}"


class LoggedOutPage(HTMLParser):
    """The iframes and the Continue link of the IdP's logged-out page."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[str] = []
        self.continue_href: str | None = None
        self.follows_continue = False  # static/continue.js follows it once the frames loaded

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "iframe":
            assert "hidden" in values and values.get("class") == "frontchannel"
            self.frames.append(str(values["src"]))
        elif tag == "a" and values.get("id") == "continue":
            self.continue_href = values.get("href")
            self.follows_continue = "data-autoredirect" in values


def logged_out_page(response: Any) -> LoggedOutPage:
    assert response.status_code == 200, response.data[:500]
    assert response.mimetype == "text/html"
    page = LoggedOutPage()
    page.feed(response.get_data(as_text=True))
    return page


def frame_to(page: LoggedOutPage, slo_url: str) -> str:
    (url,) = [frame for frame in page.frames if frame.startswith(slo_url + "?")]
    return url


def check_idp_logout_request(
    http: FlaskClient, app: Flask, settings: dict[str, Any], url: str, session: Any
) -> None:
    """The SP accepts the framed LogoutRequest, and the IdP accepts the SP's LogoutResponse."""
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"SAMLRequest", "SigAlg", "Signature"}
    # Decoded apart from python3-saml's own checks, then checked by the SP itself.
    raw = etree.fromstring(OneLogin_Saml2_Utils.decode_base64_and_inflate(query["SAMLRequest"][0]))
    assert raw.tag == f"{{{saml.NS['samlp']}}}LogoutRequest"
    assert saml.value(raw, "saml:Issuer") == saml.IDP_ENTITY_ID
    assert raw.get("Destination") == settings["sp"]["singleLogoutService"]["url"]
    sp_side = saml.sp_auth(settings, url)
    back = sp_side.process_slo()
    assert sp_side.get_errors() == [], sp_side.get_last_error_reason()
    request_xml = etree.fromstring(sp_side.get_last_request_xml())
    assert saml.value(request_xml, "saml:NameID") == session.get_nameid()
    assert saml.value(request_xml, "samlp:SessionIndex") == session.get_session_index()
    before = len(saml.audit_events(app, "saml_logout_response"))
    answered = http.get(local(back))
    assert answered.status_code == 200, answered.data[:300]
    assert "signed out" in answered.get_data(as_text=True)
    events = saml.audit_events(app, "saml_logout_response")
    assert len(events) == before + 1
    assert events[-1].rp == settings["sp"]["entityId"]
    assert events[-1].details["status"] == SUCCESS


def session_list(app: Flask) -> list[dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["session", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def record_of(app: Flask, session_index: str) -> tuple[str, str]:
    """Return (sid of its login session, SP entity ID) of the SessionIndex the SP holds."""
    with app.app_context():
        record = db.get_session().scalar(
            select(SamlSessionIndex).where(SamlSessionIndex.session_index == session_index)
        )
        assert record is not None
        return record.login.sid, record.sp_entity_id


def participants(app: Flask) -> dict[str, SessionParticipant]:
    with app.app_context():
        rows = db.get_session().scalars(select(SessionParticipant))
        return {row.rp: row for row in rows}


def assert_sent_to_login(http: FlaskClient, app: Flask, settings: dict[str, Any]) -> None:
    """A new AuthnRequest from the SP gets the login form, and no assertion is issued."""
    before = saml.counts(app)
    issued = len(saml.audit_events(app, "assertion_issued"))
    response, _ = saml.sso(http, settings)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    after = saml.counts(app)
    assert after["saml_session_index"] == before["saml_session_index"]
    assert after["login_session"] == before["login_session"]
    assert len(saml.audit_events(app, "assertion_issued")) == issued


# One login -------------------------------------------------------------------------------------


def test_saml_after_oidc_asks_no_password_and_shares_the_session(
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    payroll: dict[str, Any],
    notes: oidc.Client,
) -> None:
    response = oidc.authorize(http, notes)
    assert urlsplit(response.headers["Location"]).path == "/login"
    next_url = oidc.query_of(response.headers["Location"])["next"]
    assert auth.login(user.email, user.password, next_url=next_url).status_code == 302
    tokens = rx.sign_in_to(http, notes)

    session = saml_sign_in(http, payroll)

    assert len(saml.audit_events(app, "login_success")) == 1  # one password, typed once
    assert session.get_attribute("urn:oid:0.9.2342.19200300.100.1.3") == [user.email]
    sid, entity_id = record_of(app, session.get_session_index())
    assert entity_id == saml.SP_ENTITY_ID
    assert sid == tokens["claims"]["sid"]
    assert saml.audit_events(app, "assertion_issued")[-1].sid == sid
    (row,) = session_list(app)
    assert row["id"] == sid and row["user"] == user.email
    assert [(item["protocol"], item["rp"]) for item in row["participants"]] == [
        ("oidc", notes.client_id),
        ("saml", saml.SP_ENTITY_ID),
    ]


def test_oidc_after_saml_asks_no_password_and_shares_the_session(
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    payroll: dict[str, Any],
    notes: oidc.Client,
) -> None:
    response, request_id = saml.sso(http, payroll)
    assert urlsplit(response.headers["Location"]).path == "/login"
    next_url = oidc.query_of(response.headers["Location"])["next"]
    login = auth.login(user.email, user.password, next_url=next_url)
    assert login.status_code == 302
    form = saml.read_form(http.get(login.headers["Location"]))
    session = saml.process_response(payroll, form, request_id)
    assert session.get_errors() == [], session.get_last_error_reason()

    verifier, challenge = oidc.pkce_pair()
    response = oidc.authorize(
        http,
        notes,
        scope="openid offline_access",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    # Straight back to the client with a code: no login form, no consent page.
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == notes.redirect_uri
    code = oidc.query_of(response.headers["Location"])["code"]
    exchanged = oidc.exchange(http, notes, code, code_verifier=verifier)
    assert exchanged.status_code == 200, exchanged.data
    claims = oidc.decode(http, exchanged.get_json()["id_token"], audience=notes.client_id)

    assert len(saml.audit_events(app, "login_success")) == 1
    sid, _ = record_of(app, session.get_session_index())
    assert claims["sid"] == sid
    assert claims["nonce"] == "nonce-456"
    (row,) = session_list(app)
    assert row["id"] == sid
    assert [(item["protocol"], item["rp"]) for item in row["participants"]] == [
        ("saml", saml.SP_ENTITY_ID),
        ("oidc", notes.client_id),
    ]


# One logout: SAML SLO from one SP --------------------------------------------------------------


def test_saml_slo_ends_the_session_for_every_app(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clock: Clock,
    receiver: rx.Receiver,
    payroll: dict[str, Any],
    ledger: dict[str, Any],
    notes: oidc.Client,
    wiki: oidc.Client,
) -> None:
    notes_tokens = rx.sign_in_to(http, notes)
    wiki_tokens = rx.sign_in_to(http, wiki)
    payroll_session = saml_sign_in(http, payroll)
    ledger_session = saml_sign_in(http, ledger)
    sid = notes_tokens["claims"]["sid"]
    assert wiki_tokens["claims"]["sid"] == sid
    assert record_of(app, ledger_session.get_session_index())[0] == sid
    path, request_id = sp_logout_url(payroll, payroll_session)

    response = http.get(path)

    # The OIDC back-channel client got a logout token for this very session.
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, notes, now=clock.now)
    assert claims["sid"] == sid
    assert claims["sub"] == notes_tokens["claims"]["sub"]
    rx.assert_tokens_dead(http, notes, notes_tokens)
    rx.assert_tokens_dead(http, wiki, wiki_tokens)
    assert rx.login_row(app, sid).revoked_reason == "saml_logout"
    assert http.get("/").status_code == 302
    assert session_list(app) == []

    # The other apps hear of it in hidden iframes; the initiating SP is not framed.
    page = logged_out_page(response)
    assert len(page.frames) == 2
    assert not any(frame.startswith(saml.SLO_URL) for frame in page.frames)
    wiki_frame = urlsplit(frame_to(page, WIKI_FC))
    assert parse_qs(wiki_frame.query) == {"iss": ["http://idp.test"], "sid": [sid]}
    check_idp_logout_request(http, app, ledger, frame_to(page, LEDGER["slo_url"]), ledger_session)

    # Then the browser goes back to the initiating SP with its signed LogoutResponse.
    assert page.continue_href is not None
    assert page.follows_continue
    assert page.continue_href.startswith(saml.SLO_URL + "?SAMLResponse=")
    query = parse_qs(urlsplit(page.continue_href).query)
    raw = etree.fromstring(OneLogin_Saml2_Utils.decode_base64_and_inflate(query["SAMLResponse"][0]))
    assert raw.tag == f"{{{saml.NS['samlp']}}}LogoutResponse"
    assert raw.get("InResponseTo") == request_id
    assert raw.get("Destination") == saml.SLO_URL
    assert saml.value(raw, "samlp:Status/samlp:StatusCode/@Value") == SUCCESS
    answer = saml.sp_auth(payroll, page.continue_href)
    answer.process_slo(request_id=request_id)
    assert answer.get_errors() == [], answer.get_last_error_reason()


def test_saml_slo_with_nobody_to_frame_goes_straight_back_to_the_sp(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clock: Clock,
    receiver: rx.Receiver,
    payroll: dict[str, Any],
    notes: oidc.Client,
) -> None:
    """A back-channel client needs no iframe: the SP gets its LogoutResponse at once."""
    notes_tokens = rx.sign_in_to(http, notes)
    session = saml_sign_in(http, payroll)
    path, request_id = sp_logout_url(payroll, session)

    response = http.get(path)

    assert response.status_code == 302
    answer = saml.sp_auth(payroll, response.headers["Location"])
    answer.process_slo(request_id=request_id)
    assert answer.get_errors() == [], answer.get_last_error_reason()
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, notes, now=clock.now)
    assert claims["sid"] == notes_tokens["claims"]["sid"]
    rx.assert_tokens_dead(http, notes, notes_tokens)


def test_a_refused_saml_slo_ends_nothing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
    payroll: dict[str, Any],
    ledger: dict[str, Any],
    notes: oidc.Client,
) -> None:
    notes_tokens = rx.sign_in_to(http, notes)
    session = saml_sign_in(http, payroll)
    saml_sign_in(http, ledger)
    # Ledger's key cannot sign for Payroll.
    forged = saml.sp_settings(http, key="ledger")
    path, _ = sp_logout_url(forged, session)
    before = saml.counts(app)

    response = http.get(path)

    assert response.status_code == 400
    assert "does not verify" in response.get_data(as_text=True)
    assert "<iframe" not in response.get_data(as_text=True)
    assert receiver.received == []
    assert rx.deliveries(app) == []
    rx.assert_tokens_alive(http, notes, notes_tokens)
    assert saml.counts(app) == before
    assert http.get("/").status_code == 200
    (row,) = session_list(app)
    assert len(row["participants"]) == 3


# One logout: at the IdP ------------------------------------------------------------------------


def by_logout_form(http: FlaskClient, tokens: dict[str, Any]) -> Any:
    return AuthActions(http).logout()


def by_end_session(http: FlaskClient, tokens: dict[str, Any]) -> Any:
    return http.get("/end_session", query_string={"id_token_hint": tokens["id_token"]})


IDP_LOGOUTS: dict[str, tuple[Callable[[FlaskClient, dict[str, Any]], Any], str]] = {
    "logout_form": (by_logout_form, "logout"),
    "end_session": (by_end_session, "rp_logout"),
}


@pytest.mark.parametrize("way", list(IDP_LOGOUTS))
def test_idp_logout_frames_every_saml_sp_with_a_signed_logout_request(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clock: Clock,
    receiver: rx.Receiver,
    payroll: dict[str, Any],
    ledger: dict[str, Any],
    notes: oidc.Client,
    wiki: oidc.Client,
    way: str,
) -> None:
    end, reason = IDP_LOGOUTS[way]
    notes_tokens = rx.sign_in_to(http, notes)
    rx.sign_in_to(http, wiki)
    payroll_session = saml_sign_in(http, payroll)
    ledger_session = saml_sign_in(http, ledger)
    sid = notes_tokens["claims"]["sid"]

    page = logged_out_page(end(http, notes_tokens))

    assert len(page.frames) == 3
    wiki_frame = urlsplit(frame_to(page, WIKI_FC))
    assert parse_qs(wiki_frame.query) == {"iss": ["http://idp.test"], "sid": [sid]}
    check_idp_logout_request(http, app, payroll, frame_to(page, saml.SLO_URL), payroll_session)
    check_idp_logout_request(http, app, ledger, frame_to(page, LEDGER["slo_url"]), ledger_session)
    (token,) = receiver.tokens
    assert rx.verify_logout_token(http, token, notes, now=clock.now)["sid"] == sid
    rx.assert_tokens_dead(http, notes, notes_tokens)
    assert rx.login_row(app, sid).revoked_reason == reason
    assert_sent_to_login(http, app, payroll)


# Admin ending: back-channel only ---------------------------------------------------------------


def by_session_revoke(app: Flask, user: TestUser, sid: str) -> list[str]:
    return ["session", "revoke", sid]


def by_user_disable(app: Flask, user: TestUser, sid: str) -> list[str]:
    return ["user", "disable", user.email]


ADMIN_ENDINGS: dict[str, tuple[Callable[[Flask, TestUser, str], list[str]], str]] = {
    "session_revoke": (by_session_revoke, "admin_revoked"),
    "user_disable": (by_user_disable, "user_disabled"),
}


@pytest.mark.parametrize("way", list(ADMIN_ENDINGS))
def test_admin_ending_reaches_oidc_by_back_channel_and_saml_needs_a_new_login(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clock: Clock,
    receiver: rx.Receiver,
    payroll: dict[str, Any],
    notes: oidc.Client,
    way: str,
) -> None:
    command, reason = ADMIN_ENDINGS[way]
    notes_tokens = rx.sign_in_to(http, notes)
    saml_sign_in(http, payroll)
    sid = notes_tokens["claims"]["sid"]

    result = app.test_cli_runner().invoke(args=command(app, logged_in, sid))

    assert result.exit_code == 0, result.output
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, notes, now=clock.now)
    assert claims["sid"] == sid
    rx.assert_tokens_dead(http, notes, notes_tokens)
    assert rx.login_row(app, sid).revoked_reason == reason
    assert session_list(app) == []
    assert_sent_to_login(http, app, payroll)
    # SAML has no back-channel here (no SOAP binding): with no browser at hand the SP is not
    # told, so its participation stays open until its own session ends (README, SAML app).
    joined = participants(app)
    assert joined[notes.client_id].logged_out_at == clock.now
    assert joined[saml.SP_ENTITY_ID].logged_out_at is None
