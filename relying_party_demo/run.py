"""``make demo``: set up the IdP with demo data, start it and the three demo apps, stop on Ctrl-C.

Runs the ``idp`` console script as any operator would; imports nothing from ``idp``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
IDP = str(BIN / "idp")
PYTHON = sys.executable
HOST = "127.0.0.1"
APPS = (
    ("IdP", 5000, [IDP, "serve", "--host", HOST, "--port", "5000", "--workers", "2"]),
    ("Notes", 5001, [PYTHON, "-m", "relying_party_demo.notes"]),
    ("Wiki", 5002, [PYTHON, "-m", "relying_party_demo.wiki"]),
    ("Payroll", 5003, [PYTHON, "-m", "relying_party_demo.payroll"]),
)
ROLES = {
    "Notes": "OIDC, confidential client, back-channel logout",
    "Wiki": "OIDC, public client with PKCE",
    "Payroll": "SAML 2.0 service provider",
    "IdP": "sign in, sign out, your sessions",
}
CREDENTIALS = re.compile(r"Demo user (\S+)(?: / | exists \(password )([^\s)]+)")


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (our own loopback app)
                return True
        except urllib.error.HTTPError:
            return True  # it answered: it is up
        except OSError:
            time.sleep(0.3)
    return False


def banner(init_output: str) -> str:
    accounts = CREDENTIALS.findall(init_output)
    width = max(len(email) for email, _ in accounts) if accounts else 0
    lines = ["", "idp demo is running; Ctrl-C stops it.", ""]
    lines += [f"  {name:<8} http://{HOST}:{port}/   {ROLES[name]}" for name, port, _ in APPS]
    lines += ["", "Sign in at any app with one of these, then open the others:"]
    lines += [f"  {email:<{width}}  {password}" for email, password in accounts]
    lines += ["", "Log out of one app: every app lets you go.", ""]
    return "\n".join(lines)


def setup(env: dict[str, str]) -> str | None:
    """Write the Payroll SP metadata, then ``idp init --demo``; return its output or None."""
    instance = Path(env.get("IDP_INSTANCE_DIR", "instance"))
    metadata = instance / "demo" / "payroll-metadata.xml"
    metadata.parent.mkdir(parents=True, exist_ok=True)
    written = subprocess.run(
        [PYTHON, "-m", "relying_party_demo.payroll", "metadata"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if written.returncode != 0:
        sys.stderr.write(written.stderr)
        return None
    metadata.write_text(written.stdout)
    init = subprocess.run(
        [IDP, "init", "--demo"], env=env, capture_output=True, text=True, check=False
    )
    sys.stdout.write(init.stdout)
    if init.returncode != 0:
        sys.stderr.write(init.stderr)
        return None
    return init.stdout


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    env = dict(os.environ)
    output = setup(env)
    if output is None:
        return 1
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for name, port, command in APPS:
            process = subprocess.Popen(command, env=env)
            processes.append(process)
            probe = "/healthz" if name == "IdP" else "/"
            if not wait_until_up(f"http://{HOST}:{port}{probe}", process):
                sys.stderr.write(f"{name} did not start on port {port}\n")
                return 1
        print(banner(output), flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
