"""The Content-Security-Policy proven in Chromium: every main page works under it, none is blocked.

Login (password, then the TOTP step), home, account and admin pages, consent, form_post and
the logged-out page with a front-channel frame, each form submitted.

One live ``idp serve`` for the module. An init script (injected by the DevTools protocol, so the
policy does not apply to it) reports each ``securitypolicyviolation`` event on the console, where
Chromium also logs the violations it blocks; any such line, or an uncaught script error, fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
import requests

from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import Watch
from tests.e2e.conftest import running_idp
from tests.helpers import oidc
from tests.helpers import receiver as rx

pytestmark = pytest.mark.e2e

ADMIN = ("admin@example.com", "admin password for the browser")
TOTP_USER = ("tom@example.com", "tom's password for the browser")
ACCOUNT_PAGES = ["/account/", "/account/sessions", "/account/tokens", "/account/security"]
ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/apps", "/admin/sessions", "/admin/keys"]


@pytest.fixture(scope="module")
def live(
    initialised_idp: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveIdp, rx.Receiver, dict[str, str]]]:
    """One IdP, an admin, and an app (consent required, front-channel logout) at a receiver."""
    with (
        running_idp(initialised_idp, tmp_path_factory.mktemp("csp")) as idp,
        rx.running_receiver() as app,
    ):
        email, password = ADMIN
        idp.idp("user", "add", email, "--name", "Ada Admin", "--password-stdin", "--admin",
                stdin=password + "\n")  # fmt: skip
        added = idp.idp(
            "client", "add", "Notes", "--redirect-uri", app.endpoint("/callback"),
            "--frontchannel-logout-uri", app.endpoint("/frontchannel"), "--json",
        )  # fmt: skip
        email, password = TOTP_USER
        idp.idp("user", "add", email, "--name", "Tom Totp", "--password-stdin",
                stdin=password + "\n")  # fmt: skip
        secret = json.loads(idp.idp("user", "totp", "enroll", email, "--json").stdout)["secret"]
        yield idp, app, {**json.loads(added.stdout), "totp_secret": secret}


def test_every_main_page_works_under_the_policy_in_chromium(
    live: tuple[LiveIdp, rx.Receiver, dict[str, str]], browser_page: Any, watch: Watch
) -> None:
    idp, app, client = live
    page = browser_page

    # The login form: a failure, then a success (forms submit, the CSRF token travels).
    page.goto(f"{idp.url}/login")
    page.fill("input[name=username]", ADMIN[0])
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Invalid email or password."
    page.fill("input[name=password]", ADMIN[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{idp.url}/")
    assert "Ada Admin" in page.content()

    for path in ACCOUNT_PAGES + ADMIN_PAGES:
        response = page.goto(f"{idp.url}{path}")
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
    page.goto(f"{idp.url}/account/tokens")
    page.fill("input#name", "browser script")
    page.check("input[name=scope][value=openid]")
    page.click("button[value=create]")
    assert page.wait_for_selector("#new-token").inner_text().startswith("idp_pat_")
    page.goto(f"{idp.url}/admin/audit")
    page.fill("input[name=type]", "login_success")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**type=login_success**")

    # Consent, then the form_post page: static/continue.js posts the code to the app.
    verifier, challenge = oidc.pkce_pair()
    query = {
        "client_id": client["client_id"],
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": app.endpoint("/callback"),
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "form_post",
    }
    page.goto(f"{idp.url}/authorize?{urlencode(query)}")
    assert page.get_by_role("button", name="Allow").is_visible()
    page.click("button[value=allow]")
    assert rx.wait_for(lambda: any("code" in r.form for r in app.received), seconds=10)
    page.wait_for_url(app.endpoint("/callback"))  # the POST's page loaded: no navigation left
    [code] = next(r.form["code"] for r in app.received if r.path == "/callback")
    # The app redeems the code: now it holds tokens of this session, and is logged out with it.
    tokens = requests.post(
        f"{idp.url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": app.endpoint("/callback"),
            "code_verifier": verifier,
        },
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    page.goto(f"{idp.url}/account/apps")
    assert "Notes" in page.content()

    # Logout: the logged-out page frames the app's front-channel URL, then says it is done.
    page.goto(f"{idp.url}/logout")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Signed out of every app.")
    assert any(r.path.startswith("/frontchannel") for r in app.received)
    assert "You are signed out" in page.content()

    # The second step of a TOTP user: the code page, then home.
    page.goto(f"{idp.url}/login")
    page.fill("input[name=username]", TOTP_USER[0])
    page.fill("input[name=password]", TOTP_USER[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{idp.url}/login/otp*")
    page.fill("input[name=otp]", pyotp.TOTP(client["totp_secret"]).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{idp.url}/")
    assert "Tom Totp" in page.content()

    assert watch.problems == []


def test_the_watch_sees_an_inline_script_the_policy_blocks(
    live: tuple[LiveIdp, rx.Receiver, dict[str, str]], browser_page: Any, watch: Watch
) -> None:
    page = browser_page
    page.goto(f"{live[0].url}/login")
    with pytest.raises(Exception):  # noqa: B017, PT011 (Playwright: the script did not load)
        page.add_script_tag(content="document.title = 'injected';")
    assert page.title() != "injected"
    assert rx.wait_for(lambda: bool(watch.problems))
    assert any("script-src" in problem for problem in watch.problems)
