"""In a real browser: an admin ends alice's session in the console; both demo apps sign her out.

Notes hears it by OIDC back-channel logout, Payroll by a SAML LogoutRequest over SOAP; alice's
browser takes no part. The run saves the console screenshots under test-results/
(docs/screenshots/ holds copies of them for the README).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import RESULTS
from tests.e2e.test_demo_journey import demo  # noqa: F401 (the fixture)
from tests.e2e.test_demo_journey import signed_in_as

pytestmark = pytest.mark.e2e


def sign_in(page: Any, app: str, idp: str, email: str, password: str) -> None:
    page.goto(f"{app}/")
    page.click("text=Log in")
    page.wait_for_url(f"{idp}/login*")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def signed_out_within(page: Any, url: str, seconds: float = 15) -> bool:
    """Reload ``url`` until the app shows nobody signed in (delivery is asynchronous)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.goto(f"{url}/")
        page.wait_for_load_state("networkidle")
        if signed_in_as(page) is None:
            return True
        time.sleep(0.3)
    return False


def test_an_admin_revokes_alices_session_and_both_apps_sign_her_out(
    demo: tuple[str, str, str, str],  # noqa: F811 (the fixture)
    browser_page: Any,
) -> None:
    idp, notes, _, payroll = demo
    alice = browser_page
    sign_in(alice, notes, idp, "alice@example.com", "alice-demo-password")
    alice.wait_for_url(f"{notes}/*")
    assert signed_in_as(alice) == "alice@example.com"
    alice.goto(f"{payroll}/")
    alice.wait_for_load_state("networkidle")
    assert signed_in_as(alice) == "alice@example.com"

    # The admin works in another browser profile (its own cookies), on a laptop-sized screen.
    admin = alice.context.browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    admin.goto(f"{idp}/admin/")
    admin.wait_for_url(f"{idp}/login*")
    admin.fill("input[name=username]", "admin@example.com")
    admin.fill("input[name=password]", "admin-demo-password")
    admin.click("button[type=submit]")
    admin.wait_for_url(f"{idp}/admin/")
    assert admin.locator("#active-sessions").inner_text() == "2"
    assert admin.locator("svg.chart rect.bar-ok").count() == 24
    RESULTS.mkdir(parents=True, exist_ok=True)
    admin.screenshot(path=str(RESULTS / "admin-dashboard.png"), full_page=True)

    admin.goto(f"{idp}/admin/sessions?user=alice%40example.com")
    session = admin.locator("ul.items > li")
    assert session.count() == 1
    assert "notes" in session.inner_text().lower() and "SAML" in session.inner_text()
    admin.screenshot(path=str(RESULTS / "admin-sessions.png"), full_page=True)
    session.locator("button:has-text('Revoke this session')").click()
    admin.wait_for_load_state("networkidle")
    assert "ended everywhere" in admin.locator(".notice").inner_text()
    assert admin.locator("ul.items > li").inner_text() == "No live sessions."

    assert signed_out_within(alice, notes), "Notes still shows alice signed in"
    assert signed_out_within(alice, payroll), "Payroll still shows alice signed in"
    alice.goto(f"{idp}/")
    assert alice.url.startswith(f"{idp}/login")
