"""A person sets up TOTP at /account/security in Chromium, then signs in with a code.

The QR code is an inline SVG image under the page's Content-Security-Policy: it must render,
and the browser must report no violation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import Watch

pytestmark = pytest.mark.e2e


def fresh_code(secret: str, steps: int = 0) -> str:
    """A code for now (moved by ``steps`` periods), not about to expire before it is submitted."""
    if time.time() % 30 > 25:
        time.sleep(30 - time.time() % 30 + 0.2)
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def test_set_up_totp_then_sign_in_with_a_code(
    live_idp: LiveIdp, browser_page: Any, watch: Watch, screenshots: Path
) -> None:
    live_idp.idp(
        "user", "add", "alice@example.com", "--name", "Alice", "--password-stdin", stdin="pw\n"
    )
    page = browser_page
    page.goto(f"{live_idp.url}/account/security")
    page.fill("input[name=username]", "alice@example.com")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_idp.url}/account/security")

    page.click("text=Set up an authenticator app")
    qr = page.locator("img.qr")
    assert qr.evaluate("image => image.complete && image.naturalWidth > 0")
    secret = page.locator("#totp-secret").inner_text()
    page.screenshot(path=str(screenshots / "1-qr-code.png"), full_page=True)
    # The previous period's code confirms it, so the current one is still unused for the login.
    page.fill("input[name=otp]", fresh_code(secret, steps=-1))
    page.click("button:has-text('Turn on')")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path=str(screenshots / "2-recovery-codes.png"), full_page=True)
    page.click("#continue")
    page.wait_for_selector("text=unused recovery code(s) left")

    page.goto(f"{live_idp.url}/logout")
    page.click("button[type=submit]")
    page.goto(f"{live_idp.url}/")
    page.fill("input[name=username]", "alice@example.com")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_idp.url}/login/otp")
    page.fill("input[name=otp]", "000000")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Invalid code."
    page.fill("input[name=otp]", fresh_code(secret))
    page.screenshot(path=str(screenshots / "3-otp-step.png"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_idp.url}/")
    assert "Alice" in page.content()
    sessions = live_idp.idp("session", "list", "--json").stdout
    assert "alice@example.com" in sessions
    assert watch.problems == []
