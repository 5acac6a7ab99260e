"""``make demo``'s launcher as real processes: busy ports, DEMO_PORT_BASE, a quiet start-up."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import FAST_HASH
from tests.demo.conftest import post_form
from tests.demo.conftest import submit_login_form

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = [sys.executable, "-m", "relying_party_demo.run"]
BANNER_END = "Log out of one app: every app lets you go."
START_TIMEOUT = 90
EMAIL_LINE = 'id="email">alice@example.com</strong>'


def free_port_base() -> int:
    """Return a port whose next three are free too."""
    for _ in range(100):
        base = random.randrange(20000, 60000)  # noqa: S311 (not security)
        sockets = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no four free consecutive ports")


def launcher_env(tmp_path: Path, base: int) -> dict[str, str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    home = tmp_path / "home"
    home.mkdir()
    return {
        **{key: value for key, value in clean.items() if key != "XDG_RUNTIME_DIR"},
        "HOME": str(home),  # gunicorn must leave nothing here
        "DEMO_PORT_BASE": str(base),
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'idp.sqlite3'}",
        "IDP_KEYS_DIR": str(tmp_path / "keys"),
        "IDP_INSTANCE_DIR": str(tmp_path / "instance"),
        **{f"IDP_{name.upper()}": str(value) for name, value in FAST_HASH.items()},
    }


def stop(process: subprocess.Popen[str]) -> None:
    """Ctrl-C the launcher and whatever it started that is still running (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_a_busy_port_stops_the_demo_before_anything_starts(tmp_path: Path) -> None:
    base = free_port_base()
    env = launcher_env(tmp_path, base)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()

        process = subprocess.Popen(
            LAUNCHER,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=60)
        finally:
            stop(process)

    assert process.returncode == 1
    assert stdout == ""  # no banner, no "running"
    (line,) = stderr.splitlines()
    assert f"port {base + 2} (Wiki) is already in use" in line
    assert "DEMO_PORT_BASE=" in line
    assert not (tmp_path / "instance").exists()  # nothing initialised
    assert not (tmp_path / "keys").exists()


class Demo:
    """The running launcher; a thread collects everything it prints."""

    def __init__(self, base: int, process: subprocess.Popen[str], home: Path) -> None:
        self.base, self.process, self.home = base, process, home
        self.lines: list[str] = []
        assert process.stdout is not None
        threading.Thread(target=self.lines.extend, args=(process.stdout,), daemon=True).start()

    def url(self, offset: int) -> str:
        return f"http://127.0.0.1:{self.base + offset}"

    @property
    def printed(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        """Return what was printed up to and including ``text``."""
        deadline = time.monotonic() + timeout
        while text not in self.printed:
            assert time.monotonic() < deadline and self.process.poll() is None, self.printed
            time.sleep(0.2)
        return self.printed[: self.printed.index(text) + len(text)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp_path = tmp_path_factory.mktemp("demo")
    base = free_port_base()
    env = launcher_env(tmp_path, base)
    process = subprocess.Popen(
        LAUNCHER,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        demo = Demo(base, process, Path(env["HOME"]))
        demo.wait_for(BANNER_END, START_TIMEOUT)
        yield demo
    finally:
        stop(process)
        assert process.stdout is not None
        process.stdout.close()


def test_start_up_is_one_banner_on_the_shifted_ports(demo: Demo) -> None:
    startup = demo.wait_for(BANNER_END, START_TIMEOUT).strip()
    assert startup.startswith("idp demo is running; Ctrl-C stops it."), startup
    for name, offset in (("IdP", 0), ("Notes", 1), ("Wiki", 2), ("Payroll", 3)):
        assert f"{name:<8} {demo.url(offset)}/" in startup
    assert "alice@example.com  alice-demo-password" in startup
    for noise in ("development server", "WARNING", "login_required", " 400 ", "Traceback"):
        assert noise not in startup
    # gunicorn's control socket (and anything else) stays out of $HOME.
    assert list(demo.home.iterdir()) == []


def test_every_app_signs_in_through_the_idp_on_the_shifted_ports(demo: Demo) -> None:
    idp, notes, wiki, payroll = (demo.url(offset) for offset in range(4))
    assert (
        requests.get(f"{idp}/.well-known/openid-configuration", timeout=30).json()["issuer"] == idp
    )
    with requests.Session() as browser:
        form = browser.get(f"{notes}/login", timeout=30)
        assert form.url.startswith(f"{idp}/login"), form.url  # the seeded redirect URI matched
        page = submit_login_form(browser, form, "alice@example.com", "alice-demo-password")
        assert page.url == f"{notes}/"
        assert EMAIL_LINE in page.text

        # Single sign-on: Wiki (OIDC) and Payroll (SAML) let Alice in with no password.
        page = browser.get(f"{wiki}/login", timeout=30)
        assert page.url == f"{wiki}/" and EMAIL_LINE in page.text
        page = post_form(browser, browser.get(f"{payroll}/login", timeout=30))
        assert page.url == f"{payroll}/" and EMAIL_LINE in page.text

    # Access logs follow the banner; a callback's code never shows in them.
    demo.wait_for('"GET /callback" 302', 10)
    assert "/callback?" not in demo.printed
    demo.wait_for("INFO idp.access: GET /authorize 302", 10)  # the IdP's, as text
