"""``make demo``: set up the IdP with demo data, start it and the three demo apps, stop on Ctrl-C.

Runs the ``idp`` console script as any operator would; imports nothing from ``idp``. The four
servers listen on DEMO_PORT_BASE (default 5000) and the three ports after it. Until every app
answers, their output is held: shown if one fails to start, dropped (start-up chatter) once the
banner is up; from then on their access logs follow the banner.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

BIN = Path(sys.executable).parent
IDP = str(BIN / "idp")
PYTHON = sys.executable
HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 5000
# (name, offset from DEMO_PORT_BASE, the variable its address is configured by, module)
APPS = (
    ("IdP", 0, "IDP_ISSUER", None),
    ("Notes", 1, "NOTES_BASE_URL", "relying_party_demo.notes"),
    ("Wiki", 2, "WIKI_BASE_URL", "relying_party_demo.wiki"),
    ("Payroll", 3, "PAYROLL_BASE_URL", "relying_party_demo.payroll"),
)
ROLES = {
    "Notes": "OIDC, confidential client, back-channel logout",
    "Wiki": "OIDC, public client with PKCE",
    "Payroll": "SAML 2.0 service provider",
    "IdP": "sign in, sign out",
}
CREDENTIALS = re.compile(r"Demo user (\S+)(?: / | exists \(password )([^\s)]+)")


class DemoError(Exception):
    """The demo cannot start; the message is the one line to show."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer: the app is up (following it would log in)


def port_base(env: dict[str, str]) -> int:
    """Return DEMO_PORT_BASE from ``env`` (default 5000)."""
    value = env.get("DEMO_PORT_BASE", "").strip() or str(DEFAULT_PORT_BASE)
    if not value.isdigit() or not 1024 <= int(value) <= 65535 - len(APPS) + 1:
        raise DemoError(f"DEMO_PORT_BASE must be a port number from 1024 to 65532, not {value!r}")
    return int(value)


def is_port_free(port: int) -> bool:
    """Return whether nothing listens on HOST:``port`` (a socket in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def check_ports(base: int) -> None:
    """Raise DemoError naming the first of the demo's ports already in use."""
    for name, offset, _, _ in APPS:
        port = base + offset
        if not is_port_free(port):
            other = base + 1000 if base + 1000 + len(APPS) <= 65536 else DEFAULT_PORT_BASE
            raise DemoError(
                f"port {port} ({name}) is already in use: stop what listens there "
                f"(another `make demo`?) or move the demo with `make demo DEMO_PORT_BASE={other}`"
            )


def demo_env(env: dict[str, str], base: int) -> dict[str, str]:
    """Return the environment every process of the demo shares: one set of addresses."""
    demo = dict(env, PYTHONUNBUFFERED="1")
    demo.setdefault("IDP_LOG_FORMAT", "text")  # a person reads this log, not a collector
    for _, offset, variable, _ in APPS:
        demo[variable] = f"http://{HOST}:{base + offset}"
    instance = Path(env.get("IDP_INSTANCE_DIR", "instance"))
    # Payroll's key pair, which `idp init --demo` registers with the IdP.
    demo.setdefault("PAYROLL_SP_DIR", str(instance / "payroll"))
    return demo


def command(module: str | None, base: int) -> list[str]:
    if module is None:
        return [IDP, "serve", "--host", HOST, "--port", str(base), "--workers", "2"]
    return [PYTHON, "-m", module]


def wait_until_up(url: str, process: subprocess.Popen[str], timeout: float = 30) -> bool:
    opener = urllib.request.build_opener(_NoRedirect)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with opener.open(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # it answered: it is up
        except OSError:
            time.sleep(0.3)
    return False


class Relay:
    """Copy a child's output to ours, held back until :meth:`release`."""

    def __init__(self, stream: IO[str]) -> None:
        self.held: list[str] = []
        self.live = False
        self.lock = threading.Lock()
        threading.Thread(target=self._copy, args=(stream,), daemon=True).start()

    def _copy(self, stream: IO[str]) -> None:
        for line in stream:
            with self.lock:
                if self.live:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    self.held.append(line)

    def release(self, *, show_held: bool) -> None:
        with self.lock:
            if show_held:
                sys.stderr.writelines(self.held)
            self.held.clear()
            self.live = True


def banner(init_output: str, base: int) -> str:
    accounts = CREDENTIALS.findall(init_output)
    width = max(len(email) for email, _ in accounts) if accounts else 0
    lines = ["", "idp demo is running; Ctrl-C stops it.", ""]
    lines += [
        f"  {name:<8} http://{HOST}:{base + offset}/   {ROLES[name]}" for name, offset, _, _ in APPS
    ]
    lines += ["", "Sign in at any app with one of these, then open the others:"]
    lines += [f"  {email:<{width}}  {password}" for email, password in accounts]
    lines += ["", f"Two-step sign-in: set up TOTP at http://{HOST}:{base}/account/security"]
    lines += ["Log out of one app: every app lets you go.", ""]
    return "\n".join(lines)


def setup(env: dict[str, str]) -> str:
    """Run ``idp init --demo`` and return its output."""
    init = subprocess.run(
        [IDP, "init", "--demo"], env=env, capture_output=True, text=True, check=False
    )
    if init.returncode != 0:
        sys.stderr.write(init.stdout)
        raise DemoError(init.stderr.strip() or "`idp init --demo` failed")
    return init.stdout


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def start(env: dict[str, str], base: int, processes: list[subprocess.Popen[str]]) -> None:
    """Start the four servers and wait until each answers."""
    relays = []
    for name, offset, _, module in APPS:
        process = subprocess.Popen(
            command(module, base),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Out of the terminal's process group: Ctrl-C reaches the launcher alone, which stops
            # each server once (a second signal can deadlock gunicorn's threaded worker).
            process_group=0,
        )
        processes.append(process)
        assert process.stdout is not None  # noqa: S101 (stdout=PIPE)
        relay = Relay(process.stdout)
        relays.append(relay)
        probe = "/healthz" if module is None else "/"
        if not wait_until_up(f"http://{HOST}:{base + offset}{probe}", process):
            time.sleep(0.2)  # let the relay catch the last words
            relay.release(show_held=True)
            raise DemoError(f"{name} did not start on port {base + offset}")
    for relay in relays:
        relay.release(show_held=False)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # `kill` stops the demo as Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    processes: list[subprocess.Popen[str]] = []
    try:
        base = port_base(dict(os.environ))
        check_ports(base)  # before anything is written or started
        env = demo_env(dict(os.environ), base)
        output = setup(env)
        start(env, base, processes)
        print(banner(output, base), flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return 1
    except DemoError as error:
        sys.stderr.write(f"make demo: {error}\n")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
