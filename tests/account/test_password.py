"""/account/security: change one's password (the current one required); other sessions end."""

from __future__ import annotations

from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.account.conftest import LAPTOP
from tests.account.conftest import PHONE
from tests.account.conftest import Device
from tests.account.conftest import is_signed_in
from tests.account.conftest import login_of
from tests.account.conftest import login_states
from tests.account.conftest import sign_in
from tests.account.conftest import submit
from tests.account.conftest import user_row
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx

NEW = "a new and much longer passphrase"


def can_log_in(app: Flask, email: str, password: str) -> bool:
    response = AuthActions(app.test_client()).login(email, password)
    assert response.status_code in (302, 401)
    return response.status_code == 302


def change(http: FlaskClient, current: str, new: str = NEW, confirm: str | None = None) -> Any:
    return submit(
        http,
        "/account/security",
        current_password=current,
        new_password=new,
        confirm_password=new if confirm is None else confirm,
    )


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(
    app: Flask, user: TestUser, device: Device, receiver: rx.Receiver, clock: Clock
) -> None:
    client = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint())
    laptop, phone = device(LAPTOP), device(PHONE)
    kept, ended = rx.sign_in_to(laptop, client), rx.sign_in_to(phone, client)
    old_hash = user_row(app, user.id)[-1]

    response = change(laptop, user.password)

    assert response.status_code == 303
    assert "Your password is changed." in laptop.get("/account/security").get_data(as_text=True)
    new_hash = user_row(app, user.id)[-1]
    assert new_hash != old_hash and new_hash.startswith("$argon2id$")
    assert is_signed_in(laptop) and not is_signed_in(phone)
    rx.assert_tokens_alive(laptop, client, kept)
    rx.assert_tokens_dead(laptop, client, ended)
    (token,) = receiver.tokens
    assert (
        rx.verify_logout_token(laptop, token, client, now=clock.now)["sid"]
        == (ended["claims"]["sid"])
    )
    assert login_of(app, PHONE).revoked_reason == "password_changed"
    assert len(rx.audit_events(app, "user_password_changed")) == 1
    assert can_log_in(app, user.email, NEW)
    assert not can_log_in(app, user.email, user.password)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("not my password", NEW, None, "The current password is wrong."),
        ("", NEW, None, "The current password is wrong."),
        ("correct horse battery staple", NEW, "a typo", "its confirmation differ"),
        ("correct horse battery staple", "", None, "The password is empty."),
        ("correct horse battery staple", "x" * 1025, None, "longer than 1024"),
    ],
)
def test_a_refused_change_changes_nothing(
    app: Flask,
    user: TestUser,
    device: Device,
    current: str,
    new: str,
    confirm: str | None,
    message: str,
) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    before, states = user_row(app, user.id), login_states(app)

    response = change(laptop, current, new, confirm)

    assert response.status_code == 400
    body = unescape(response.get_data(as_text=True))
    assert message in body and 'role="alert"' in body
    assert current not in body or not current  # no password is echoed back
    assert user_row(app, user.id) == before
    assert login_states(app) == states
    assert is_signed_in(laptop) and is_signed_in(phone)
    assert rx.audit_events(app, "user_password_changed") == []
    assert can_log_in(app, user.email, user.password)


def test_a_wrong_current_password_is_audited(app: Flask, user: TestUser, device: Device) -> None:
    laptop = device(LAPTOP)
    change(laptop, "not my password")
    (event,) = rx.audit_events(app, "password_change_refused")
    assert event.user_id == user.id
    assert event.sid == login_of(app, LAPTOP).sid
    assert "not my password" not in str(event.details)


def test_without_the_csrf_token_the_password_stays(
    app: Flask, user: TestUser, device: Device
) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    before, states = user_row(app, user.id), login_states(app)
    response = laptop.post(
        "/account/security",
        data={"current_password": user.password, "new_password": NEW, "confirm_password": NEW},
    )
    assert response.status_code == 400
    assert user_row(app, user.id) == before
    assert login_states(app) == states
    assert is_signed_in(phone)


def test_the_form_asks_for_the_current_password_and_a_new_one_twice(
    app: Flask, user: TestUser
) -> None:
    page = sign_in(app, user, LAPTOP).get("/account/security").get_data(as_text=True)
    assert 'name="current_password" type="password" autocomplete="current-password"' in page
    assert page.count('autocomplete="new-password"') == 2
