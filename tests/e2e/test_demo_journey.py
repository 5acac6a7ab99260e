"""The README journey in a real browser: log in once, every app lets you in; log out once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_HASH
from tests.demo.test_launcher import free_port_base
from tests.e2e.conftest import wait_until_up

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, str, str]]:
    """``make demo``'s launcher on four free ports (DEMO_PORT_BASE), with its data in tmp."""
    base = free_port_base()
    urls = tuple(f"http://127.0.0.1:{base + offset}" for offset in range(4))
    env = {
        **os.environ,
        "DEMO_PORT_BASE": str(base),
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_KEYS_DIR": str(tmp_path / "keys"),
        "IDP_INSTANCE_DIR": str(tmp_path / "instance"),
        "PAYROLL_SP_DIR": str(tmp_path / "payroll"),
        **{f"IDP_{name.upper()}": str(value) for name, value in FAST_HASH.items()},
    }
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "relying_party_demo.run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        idp, notes, wiki, payroll = urls
        for url in (f"{idp}/healthz", f"{notes}/", f"{wiki}/", f"{payroll}/"):
            wait_until_up(url, process, timeout=60)
        yield idp, notes, wiki, payroll
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def signed_in_as(page: Any) -> str | None:
    email = page.locator("#email")
    return email.inner_text() if email.count() else None


def test_one_login_one_logout_every_app(
    demo: tuple[str, str, str, str], browser_page: Any, screenshots: Path
) -> None:
    IDP, NOTES, WIKI, PAYROLL = demo  # the four addresses of the README
    page = browser_page
    page.goto(f"{NOTES}/")
    assert signed_in_as(page) is None
    page.click("text=Log in")
    page.wait_for_url(f"{IDP}/login*")
    page.fill("input[name=username]", "alice@example.com")
    page.fill("input[name=password]", "alice-demo-password")
    page.screenshot(path=str(screenshots / "1-idp-login.png"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{NOTES}/*")
    assert signed_in_as(page) == "alice@example.com"
    page.screenshot(path=str(screenshots / "2-notes-signed-in.png"), full_page=True)

    # Every other app lets Alice in with no login form.
    for name, url in (("wiki", WIKI), ("payroll", PAYROLL)):
        page.goto(f"{url}/")
        page.wait_for_load_state("networkidle")
        assert page.url.startswith(url), f"{name} stopped at {page.url}"
        assert page.locator("input[name=password]").count() == 0
        assert signed_in_as(page) == "alice@example.com", name
        page.screenshot(path=str(screenshots / f"3-{name}-signed-in.png"), full_page=True)

    # Log out at Wiki: the IdP signs Alice out of everything, then sends her back to Wiki.
    page.goto(f"{WIKI}/")
    page.click("button:has-text('Log out')")
    page.wait_for_url(f"{WIKI}/*", timeout=15_000)
    page.wait_for_load_state("networkidle")
    assert signed_in_as(page) is None
    page.screenshot(path=str(screenshots / "4-wiki-signed-out.png"), full_page=True)

    for name, url in (("notes", NOTES), ("payroll", PAYROLL)):
        page.goto(f"{url}/")
        page.wait_for_load_state("networkidle")
        assert signed_in_as(page) is None, f"{name} still has a session"
        page.screenshot(path=str(screenshots / f"5-{name}-signed-out.png"), full_page=True)

    page.goto(f"{IDP}/")
    assert page.url.startswith(f"{IDP}/login")
