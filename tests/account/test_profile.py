"""/account/: the user's names are theirs to edit; the e-mail is shown, not changed here."""

from __future__ import annotations

from html import unescape

import pytest
from flask import Flask

from tests.account.conftest import LAPTOP
from tests.account.conftest import Device
from tests.account.conftest import submit
from tests.account.conftest import user_row
from tests.conftest import TestUser
from tests.helpers import receiver as rx


def test_the_profile_shows_the_email_and_saves_the_names(
    app: Flask, user: TestUser, device: Device
) -> None:
    laptop = device(LAPTOP)
    page = unescape(laptop.get("/account/").get_data(as_text=True))
    assert 'value="alice@example.com" readonly' in page
    assert 'value="Alice Liddell"' in page

    response = submit(
        laptop,
        "/account/",
        name="  Alice P. Liddell ",
        given_name="Alice",
        family_name="",
        email="mallory@example.com",  # not a field of this form: ignored
    )

    assert response.status_code == 303
    assert "Your profile is saved." in laptop.get("/account/").get_data(as_text=True)
    assert user_row(app, user.id)[:4] == ("Alice P. Liddell", "Alice", None, "alice@example.com")
    (event,) = rx.audit_events(app, "user_updated")
    assert event.user_id == user.id
    assert event.details["fields"] == ["family_name", "name"]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "   "}, "The name must be 1 to 200 characters."),
        ({"name": "A" * 201}, "The name must be 1 to 200 characters."),
        ({"name": "Alice", "given_name": "A" * 101}, "given_name must be at most 100"),
    ],
)
def test_a_refused_profile_changes_nothing(
    app: Flask, user: TestUser, device: Device, form: dict[str, str], message: str
) -> None:
    laptop = device(LAPTOP)
    before = user_row(app, user.id)
    response = submit(laptop, "/account/", **form)
    assert response.status_code == 400
    assert message.lower() in unescape(response.get_data(as_text=True)).lower()
    assert user_row(app, user.id) == before
    assert rx.audit_events(app, "user_updated") == []


def test_without_the_csrf_token_the_profile_stays(
    app: Flask, user: TestUser, device: Device
) -> None:
    laptop = device(LAPTOP)
    before = user_row(app, user.id)
    response = laptop.post("/account/", data={"name": "Mallory"})
    assert response.status_code == 400
    assert user_row(app, user.id) == before
