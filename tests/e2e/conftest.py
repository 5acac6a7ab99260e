"""Real processes on loopback and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST_HASH
from tests.conftest import require_service
from tests.helpers.cli import console

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
        """Run ``idp ARGS...`` on this IdP's files, in this process (the server is the real one)."""
        result = console(*args, env=self.env, input=stdin)
        result.check_returncode()
        return result


def idp_environment(folder: Path, port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The environment of an ``idp`` whose files are in ``folder``, serving on ``port``.

    ``host`` names the issuer's host: ``localhost`` where WebAuthn needs a domain, not an IP.
    """
    return {
        **os.environ,
        "IDP_ISSUER": f"http://{host}:{port}",
        "IDP_DATABASE_URL": f"sqlite:///{folder / 'idp.sqlite3'}",
        "IDP_KEYS_DIR": str(folder / "keys"),
        "IDP_INSTANCE_DIR": str(folder / "instance"),
        # Its temporary files (the metrics folder a killed server leaves) stay with the test's.
        "TMPDIR": str(folder),
        **{f"IDP_{name.upper()}": str(value) for name, value in FAST_HASH.items()},
    }


@pytest.fixture(scope="session")
def initialised_idp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``idp init`` writes, once per run (per xdist worker); each live IdP gets a copy."""
    folder = tmp_path_factory.mktemp("idp-init")
    LiveIdp("", idp_environment(folder, free_port())).idp("init")
    return folder


@contextmanager
def running_idp(
    template: Path, folder: Path, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[LiveIdp]:
    """``idp serve`` on a free loopback port, on a copy of an initialised ``template``.

    ``env`` overrides its environment (``IDP_DATABASE_URL``: serve a test app's database);
    ``host`` names it (``localhost`` where a browser refuses an IP address, as WebAuthn does).
    """
    shutil.copytree(template, folder, dirs_exist_ok=True)
    port = free_port()
    live = LiveIdp(f"http://{host}:{port}", {**idp_environment(folder, port, host), **(env or {})})
    with (folder / "idp.log").open("wb") as log:
        process = subprocess.Popen(
            [IDP, "serve", "--port", str(port), "--workers", "1"],
            env=live.env,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: the master and its workers
        )
        try:
            wait_until_up(f"{live.url}/healthz", process)
            yield live
        finally:
            # The test is over: no graceful stop, which costs each server ~1 s of wall time
            # and CPU (gunicorn waits for its worker, then each interpreter shuts down).
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def live_idp(initialised_idp: Path, tmp_path: Path) -> Iterator[LiveIdp]:
    """``idp init`` (a copy) then ``idp serve`` on a free loopback port, stopped after the test."""
    with running_idp(initialised_idp, tmp_path) as live:
        yield live


def chromium_path() -> str | None:
    return os.environ.get("IDP_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (never a downloaded browser), once per worker."""
    executable = chromium_path()
    require_service(
        executable is not None and os.access(executable, os.X_OK),
        f"Chromium not found at {executable}"
        if executable
        else "Chromium not installed (apt install chromium)",
    )
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
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[object]:
    """A page in a new browser context: its own cookies and storage, as a fresh browser has."""
    context = chromium.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    path = RESULTS / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    return path


REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + event.blockedURI);
});
"""


class Watch:
    """The console lines that tell of a blocked resource, and uncaught script errors."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or text.startswith("CSP violation"):
            self.problems.append(f"{message.page.url if message.page else ''}: {text}")


@pytest.fixture
def watch(browser_page: Any) -> Watch:
    return Watch(browser_page)
