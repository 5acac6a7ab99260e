"""A passkey enrolled and used in Chromium, with its virtual authenticator (DevTools protocol).

The IdP's issuer is http://localhost:PORT: WebAuthn wants a domain as RP ID, not an IP
address, and treats localhost as a secure context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import Watch
from tests.e2e.conftest import running_idp

pytestmark = pytest.mark.e2e


@pytest.fixture
def localhost_idp(initialised_idp: Path, tmp_path: Path) -> Iterator[LiveIdp]:
    with running_idp(initialised_idp, tmp_path, host="localhost") as live:
        yield live


def test_register_then_sign_in_with_a_passkey_in_chromium(
    localhost_idp: LiveIdp, browser_page: Any, watch: Watch, screenshots: Path
) -> None:
    live = localhost_idp
    live.idp(
        "user", "add", "alice@example.com", "--name", "Alice Liddell", "--password-stdin",
        stdin="wonderland\n",
    )  # fmt: skip
    page = browser_page
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )["authenticatorId"]

    page.goto(f"{live.url}/account/security")
    page.fill("input[name=username]", "alice@example.com")
    page.fill("input[name=password]", "wonderland")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{live.url}/account/security")
    page.fill("#passkey-new-name", "Chromium")
    page.click("text=Add a passkey")
    page.wait_for_selector("text=Passkey “Chromium” added")
    page.screenshot(path=str(screenshots / "1-passkey-added.png"), full_page=True)
    [credential] = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})[
        "credentials"
    ]
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == "localhost"

    page.click("text=Sign out")
    page.click("button[type=submit]")
    page.wait_for_selector("text=You are signed out")

    page.goto(f"{live.url}/login?next=/account/security")
    page.screenshot(path=str(screenshots / "2-login-page.png"))
    page.click("text=Sign in with a passkey")
    page.wait_for_url(f"{live.url}/account/security")
    assert "Chromium" in page.content() and "last used" in page.content()
    page.screenshot(path=str(screenshots / "3-signed-in-with-passkey.png"), full_page=True)
    sessions = live.idp("session", "list", "--json").stdout
    assert "alice@example.com" in sessions
    assert watch.problems == []

    # The listener does see a violation: an inline script is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.inline = 1'; document.body.appendChild(s); }"
    )
    page.wait_for_timeout(100)
    assert any("Content Security Policy" in report for report in watch.problems)
    assert page.evaluate("() => window.inline") is None
