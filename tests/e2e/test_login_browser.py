"""A person signs in to a real ``idp serve`` with a real browser, then signs out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import LiveIdp

pytestmark = pytest.mark.e2e


def test_sign_in_and_out_in_chromium(
    live_idp: LiveIdp, browser_page: Any, screenshots: Path
) -> None:
    live_idp.idp(
        "user",
        "add",
        "alice@example.com",
        "--name",
        "Alice Liddell",
        "--password-stdin",
        stdin="wonderland\n",
    )
    page = browser_page
    page.goto(f"{live_idp.url}/")
    assert page.url.startswith(f"{live_idp.url}/login")

    page.fill("input[name=username]", "alice@example.com")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Invalid email or password."
    assert page.input_value("input[name=username]") == "alice@example.com"  # kept
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"

    page.fill("input[name=password]", "wonderland")
    page.screenshot(path=str(screenshots / "1-login.png"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_idp.url}/")
    assert "Alice Liddell" in page.content()
    page.screenshot(path=str(screenshots / "2-signed-in.png"))

    sessions = live_idp.idp("session", "list", "--json").stdout
    assert "alice@example.com" in sessions

    page.click("text=Sign out")
    page.click("button[type=submit]")
    # click() does not wait for the navigation it starts: wait for the page it leads to.
    page.wait_for_selector("text=You are signed out")
    page.goto(f"{live_idp.url}/")
    assert page.url.startswith(f"{live_idp.url}/login")
