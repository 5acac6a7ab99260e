"""Real processes on loopback and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FAST_HASH
from tests.conftest import require_service

IDP = str(Path(sys.executable).parent / "idp")
RESULTS = Path(__file__).resolve().parents[2] / "test-results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # it answered (an app may refuse a cookie-less visitor): it is up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class LiveIdp:
    url: str
    env: dict[str, str]

    def idp(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IDP, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )


@pytest.fixture
def live_idp(tmp_path: Path) -> Iterator[LiveIdp]:
    """``idp init`` then ``idp serve`` on a free loopback port, stopped after the test."""
    port = free_port()
    env = {
        **os.environ,
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_KEYS_DIR": str(tmp_path / "keys"),
        "IDP_INSTANCE_DIR": str(tmp_path / "instance"),
        **{f"IDP_{name.upper()}": str(value) for name, value in FAST_HASH.items()},
    }
    live = LiveIdp(f"http://127.0.0.1:{port}", env)
    live.idp("init")
    log = (tmp_path / "idp.log").open("wb")
    process = subprocess.Popen(
        [IDP, "serve", "--port", str(port), "--workers", "1"], env=env, stdout=log, stderr=log
    )
    try:
        wait_until_up(f"{live.url}/healthz", process)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def chromium_path() -> str | None:
    return os.environ.get("IDP_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[object]:
    """A Playwright page in Debian's Chromium (never a downloaded browser)."""
    executable = chromium_path()
    require_service(executable is not None, "Chromium not installed (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    path = RESULTS / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path
