"""Every account page needs a login: anonymous browsers go to /login and come back."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.account.conftest import LAPTOP
from tests.account.conftest import PHONE
from tests.account.conftest import Device
from tests.account.conftest import login_of
from tests.account.conftest import login_states
from tests.account.conftest import submit
from tests.account.conftest import user_row
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.test_pages import assert_idp_page

PAGES = {
    "/account/": "Your profile",
    "/account/security": "Password and security",
    "/account/sessions": "Your sessions",
    "/account/apps": "Your apps",
}


@pytest.mark.parametrize("path", PAGES)
def test_an_anonymous_browser_is_sent_to_log_in_and_back(
    app: Flask, http: FlaskClient, user: TestUser, path: str
) -> None:
    response = http.get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": [path]}
    back = AuthActions(http).login(user.email, user.password, next_url=path)
    assert back.headers["Location"] == path
    assert_idp_page(http.get(path), PAGES[path])


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/account/", {"name": "Mallory"}),
        ("/account/security", {"current_password": "x", "new_password": "y"}),
        ("/account/sessions", {"action": "end_others"}),
        ("/account/apps", {"client_id": "notes"}),
    ],
)
def test_an_anonymous_post_changes_nothing(
    app: Flask, http: FlaskClient, user: TestUser, device: Device, path: str, form: dict[str, str]
) -> None:
    device(LAPTOP)
    before, states = user_row(app, user.id), login_states(app)
    with http.session_transaction() as cookie:
        cookie["_csrf_token"] = "known"
    response = http.post(path, data={**form, "csrf_token": "known", "sid": "0" * 32})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert user_row(app, user.id) == before
    assert login_states(app) == states


def test_a_browser_whose_session_was_ended_elsewhere_is_sent_to_log_in(
    app: Flask, device: Device
) -> None:
    laptop, phone = device(LAPTOP), device(PHONE)
    submit(laptop, "/account/sessions", action="end", sid=login_of(app, PHONE).sid)
    response = phone.get("/account/")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_the_home_page_links_to_the_account_pages(app: Flask, device: Device) -> None:
    page = device(LAPTOP).get("/").get_data(as_text=True)
    for path in PAGES:
        assert f'href="{path}"' in page


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_cannot_be_framed_or_cached(app: Flask, device: Device, path: str) -> None:
    response = device(LAPTOP).get(path)
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
