"""/account/sessions: the user's own sessions, "log out this device", "log out everywhere else"."""

from __future__ import annotations

from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.saml.registration import get_sp_names
from tests.account.conftest import LAPTOP
from tests.account.conftest import PHONE
from tests.account.conftest import TABLET
from tests.account.conftest import Device
from tests.account.conftest import is_signed_in
from tests.account.conftest import login_of
from tests.account.conftest import login_states
from tests.account.conftest import sign_in
from tests.account.conftest import submit
from tests.conftest import Clock
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml
from tests.helpers.forms import csrf_token

BOBS_PC = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


def test_the_page_lists_the_users_own_sessions_with_device_address_and_apps(
    app: Flask, device: Device, clock: Clock
) -> None:
    laptop = device(LAPTOP, ip="192.0.2.10")
    clock.advance(minutes=5)
    phone = device(PHONE, ip="198.51.100.7")
    rx.sign_in_to(phone, oidc.register(app, "Notes"))
    settings = saml.sp_settings(phone)
    entity_id = saml.register(app, settings)
    saml.signed_in(phone, settings)
    with app.app_context():
        sp_name = get_sp_names([entity_id])[entity_id]
    clock.advance(minutes=5)
    device(TABLET, ip="2001:db8::7")
    bob = make_user(app, "bob@example.com", "bob's password", name="Bob")
    sign_in(app, bob, BOBS_PC, ip="203.0.113.99")

    page = unescape(laptop.get("/account/sessions").get_data(as_text=True))

    assert "Chrome on Linux" in page and "192.0.2.10" in page
    assert "Safari on iOS" in page and "198.51.100.7" in page
    assert "Firefox on Android" in page and "2001:db8::7" in page
    # The apps by their display names, not their ids.
    assert f"Apps: Notes, {sp_name}" in page
    assert "Firefox on Windows" not in page and "203.0.113.99" not in page  # bob's
    assert page.count('<span class="badge">this device</span>') == 1
    # This device first, then the others newest first.
    order = [page.index(name) for name in ("Chrome on Linux", "Firefox on Android", "Safari")]
    assert order == sorted(order)
    assert login_of(app, PHONE).sid in page
    assert login_of(app, LAPTOP).sid not in page  # this one signs out through /logout
    assert clock.now.strftime("%Y-%m-%d %H:%M UTC") in page


def test_log_out_everywhere_else_keeps_this_session_and_ends_the_others(
    app: Flask, device: Device, receiver: rx.Receiver, clock: Clock
) -> None:
    client = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint())
    laptop, phone, tablet = device(LAPTOP), device(PHONE), device(TABLET)
    kept = rx.sign_in_to(laptop, client)
    ended = [rx.sign_in_to(phone, client), rx.sign_in_to(tablet, client)]

    response = submit(laptop, "/account/sessions", action="end_others")

    assert response.status_code == 303
    assert response.headers["Location"] == "/account/sessions"
    assert "Signed out 2 other session(s)." in laptop.get("/account/sessions").get_data(
        as_text=True
    )
    assert is_signed_in(laptop)
    assert not is_signed_in(phone) and not is_signed_in(tablet)
    rx.assert_tokens_alive(laptop, client, kept)
    for tokens in ended:
        rx.assert_tokens_dead(laptop, client, tokens)
    sids = {
        rx.verify_logout_token(laptop, token, client, now=clock.now)["sid"]
        for token in receiver.tokens
    }
    assert sids == {tokens["claims"]["sid"] for tokens in ended}
    revoked = rx.audit_events(app, "session_revoked")
    assert {event.sid for event in revoked} == sids
    assert {event.details["reason"] for event in revoked} == {"revoked_by_user"}


def test_log_out_this_device_ends_that_session_only(
    app: Flask, device: Device, receiver: rx.Receiver, clock: Clock
) -> None:
    client = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint())
    laptop, phone, tablet = device(LAPTOP), device(PHONE), device(TABLET)
    phone_tokens = rx.sign_in_to(phone, client)
    tablet_tokens = rx.sign_in_to(tablet, client)

    response = submit(laptop, "/account/sessions", action="end", sid=login_of(app, PHONE).sid)

    assert response.status_code == 303
    assert "That device is signed out." in laptop.get("/account/sessions").get_data(as_text=True)
    assert not is_signed_in(phone)
    assert is_signed_in(laptop) and is_signed_in(tablet)
    rx.assert_tokens_dead(laptop, client, phone_tokens)
    rx.assert_tokens_alive(laptop, client, tablet_tokens)
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(laptop, token, client, now=clock.now)
    assert claims["sid"] == phone_tokens["claims"]["sid"]
    assert login_of(app, PHONE).revoked_reason == "revoked_by_user"


@pytest.mark.parametrize("whose", ["another user's", "unknown", "already ended"])
def test_a_session_not_ones_own_is_404_and_nothing_changes(
    app: Flask, device: Device, receiver: rx.Receiver, whose: str
) -> None:
    client = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint())
    laptop = device(LAPTOP)
    bob = make_user(app, "bob@example.com", "bob's password", name="Bob")
    bobs_browser = sign_in(app, bob, TABLET)
    bobs_tokens = rx.sign_in_to(bobs_browser, client)
    sid = {
        "another user's": login_of(app, TABLET).sid,
        "unknown": "0" * 32,
        "already ended": "",
    }[whose]
    if whose == "already ended":
        phone = device(PHONE)
        sid = login_of(app, PHONE).sid
        submit(laptop, "/account/sessions", action="end", sid=sid)
        assert not is_signed_in(phone)
    before = login_states(app)
    delivered = len(receiver.received)

    response = submit(laptop, "/account/sessions", action="end", sid=sid)

    assert response.status_code == 404
    assert "You have no such session." in response.get_data(as_text=True)
    assert login_states(app) == before
    assert is_signed_in(bobs_browser) and is_signed_in(laptop)
    rx.assert_tokens_alive(bobs_browser, client, bobs_tokens)
    assert len(receiver.received) == delivered


@pytest.mark.parametrize("form", [{"action": "end_others"}, {"action": "end"}])
def test_without_the_csrf_token_nothing_is_signed_out(
    app: Flask, device: Device, form: dict[str, str]
) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    form = {**form, "sid": login_of(app, PHONE).sid}
    before = login_states(app)

    for token in (None, "forged"):
        data = form if token is None else {**form, "csrf_token": token}
        response = laptop.post("/account/sessions", data=data)
        assert response.status_code == 400
        assert "The form expired" in response.get_data(as_text=True)

    assert login_states(app) == before
    assert is_signed_in(phone)


def test_an_unknown_action_is_400_and_nothing_changes(app: Flask, device: Device) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    before = login_states(app)
    response = submit(laptop, "/account/sessions", action="end_all", sid=login_of(app, PHONE).sid)
    assert response.status_code == 400
    assert login_states(app) == before
    assert is_signed_in(phone)


def test_log_out_everywhere_else_is_offered_only_with_other_sessions(
    app: Flask, device: Device
) -> None:
    laptop = device(LAPTOP)
    assert 'value="end_others"' not in laptop.get("/account/sessions").get_data(as_text=True)
    device(PHONE)
    assert 'value="end_others"' in laptop.get("/account/sessions").get_data(as_text=True)


def test_ending_this_very_session_from_the_list_signs_this_browser_out(
    app: Flask, device: Device
) -> None:
    laptop = device(LAPTOP)
    response = submit(laptop, "/account/sessions", action="end", sid=login_of(app, LAPTOP).sid)
    assert response.status_code == 303
    assert not is_signed_in(laptop)


def test_a_session_ended_elsewhere_is_gone_from_the_list(
    app: Flask, device: Device, http: FlaskClient
) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    sid = login_of(app, PHONE).sid
    assert sid in laptop.get("/account/sessions").get_data(as_text=True)
    phone_logout = phone.get("/logout")
    phone.post("/logout", data={"csrf_token": csrf_token(phone_logout.data)})
    assert sid not in laptop.get("/account/sessions").get_data(as_text=True)
