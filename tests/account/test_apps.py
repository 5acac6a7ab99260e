"""/account/apps: the apps a user allowed, and "revoke" (the consent and its tokens end)."""

from __future__ import annotations

import secrets
from html import unescape
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from idp import db
from idp.models.oidc import Consent
from tests.account.conftest import LAPTOP
from tests.account.conftest import PHONE
from tests.account.conftest import TABLET
from tests.account.conftest import Device
from tests.account.conftest import is_signed_in
from tests.account.conftest import login_states
from tests.account.conftest import sign_in
from tests.account.conftest import submit
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml


def consent_rows(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context():
        rows = db.get_session().execute(
            select(Consent.user_id, Consent.client_id, Consent.scopes, Consent.revoked_at)
        )
        return sorted(tuple(row) for row in rows)


def shows_consent_page(http: Any, client: oidc.Client) -> bool:
    # A fresh nonce each time: a client's nonces are single-use.
    nonce = secrets.token_urlsafe(8)
    response = oidc.authorize(http, client, scope="openid profile email", nonce=nonce)
    return response.status_code == 200 and b'name="decision"' in response.data


def test_revoking_an_app_ends_its_tokens_and_asks_for_consent_again(
    app: Flask, device: Device
) -> None:
    notes = oidc.register(app, "Notes", is_trusted=False)
    wiki = oidc.register(app, "Wiki", is_trusted=False)
    laptop, phone = device(LAPTOP), device(PHONE)
    notes_tokens = [rx.sign_in_to(laptop, notes), rx.sign_in_to(phone, notes)]
    wiki_tokens = rx.sign_in_to(laptop, wiki)
    assert not shows_consent_page(laptop, notes)  # remembered

    page = unescape(laptop.get("/account/apps").get_data(as_text=True))
    assert "Notes" in page and "Wiki" in page
    assert "openid, profile, email, offline_access" in page
    response = submit(laptop, "/account/apps", client_id=notes.client_id)

    assert response.status_code == 303
    page = unescape(laptop.get("/account/apps").get_data(as_text=True))
    assert "Access revoked." in page
    assert f'value="{notes.client_id}"' not in page and f'value="{wiki.client_id}"' in page
    for tokens in notes_tokens:  # on every device
        rx.assert_tokens_dead(laptop, notes, tokens)
    rx.assert_tokens_alive(laptop, wiki, wiki_tokens)
    assert is_signed_in(laptop) and is_signed_in(phone)  # the sessions go on
    assert shows_consent_page(laptop, notes)
    assert shows_consent_page(phone, notes)
    assert not shows_consent_page(laptop, wiki)
    (event,) = rx.audit_events(app, "consent_revoked")
    assert event.rp == notes.client_id
    assert event.details["tokens_revoked"] == 2
    # Allowed again, it is remembered again.
    rx.sign_in_to(laptop, notes)
    assert not shows_consent_page(laptop, notes)


@pytest.mark.parametrize("whose", ["another user's", "never allowed", "already revoked"])
def test_a_consent_not_ones_own_is_404_and_nothing_changes(
    app: Flask, user: TestUser, device: Device, whose: str
) -> None:
    notes = oidc.register(app, "Notes", is_trusted=False)
    wiki = oidc.register(app, "Wiki", is_trusted=False)
    laptop = device(LAPTOP)
    rx.sign_in_to(laptop, wiki)
    bob = sign_in(app, make_user(app, "bob@example.com", "bob's password", name="Bob"), TABLET)
    bobs_tokens = rx.sign_in_to(bob, notes)
    if whose == "already revoked":
        submit(laptop, "/account/apps", client_id=wiki.client_id)
    client_id = wiki.client_id if whose == "already revoked" else notes.client_id
    if whose == "never allowed":
        client_id = "no-such-client"
    before, sessions = consent_rows(app), login_states(app)

    response = submit(laptop, "/account/apps", client_id=client_id)

    assert response.status_code == 404
    assert "You have not allowed such an app." in response.get_data(as_text=True)
    assert consent_rows(app) == before
    assert login_states(app) == sessions
    rx.assert_tokens_alive(bob, notes, bobs_tokens)
    assert not shows_consent_page(bob, notes)


def test_without_the_csrf_token_the_consent_stays(app: Flask, device: Device) -> None:
    notes = oidc.register(app, "Notes", is_trusted=False)
    laptop = device(LAPTOP)
    tokens = rx.sign_in_to(laptop, notes)
    before = consent_rows(app)
    response = laptop.post("/account/apps", data={"client_id": notes.client_id})
    assert response.status_code == 400
    assert consent_rows(app) == before
    rx.assert_tokens_alive(laptop, notes, tokens)


def test_apps_without_a_consent_are_listed_as_signed_in(app: Flask, device: Device) -> None:
    trusted = oidc.register(app, "Payroll portal", is_trusted=True)
    laptop = device(LAPTOP)
    rx.sign_in_to(laptop, trusted)
    settings = saml.sp_settings(laptop)
    saml.register(app, settings)
    saml.signed_in(laptop, settings)

    page = unescape(laptop.get("/account/apps").get_data(as_text=True))

    assert "None yet." in page  # nothing to revoke
    assert "Payroll portal" in page and "OpenID Connect" in page and "SAML" in page
    assert 'name="client_id"' not in page


def test_the_consent_page_says_it_can_be_changed_later(app: Flask, device: Device) -> None:
    consent = oidc.authorize(device(LAPTOP), oidc.register(app, "Notes", is_trusted=False))
    body = consent.get_data(as_text=True)
    assert b'name="decision"' in consent.data
    assert "You can change this later" in body and 'href="/account/apps"' in body
