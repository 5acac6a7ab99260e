"""The ``idp`` console script, run as an operator would: its environment, its streams.

The installed script runs as a real process where the process itself is under test (entry
point, exit status, stdin, stdout apart from stderr, ``serve``); elsewhere ``run_idp`` runs
the same ``idp.cli.main`` in this process (a real start costs ~1.3 s of CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cli import console as run_idp
from tests.helpers.cli import console_environment

IDP = Path(sys.executable).parent / "idp"
COMMAND_TIMEOUT = 60


def idp(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IDP), *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return console_environment(tmp_path)


@pytest.fixture(scope="module")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``idp init --demo`` writes, once per module (the CLI's start-up costs seconds)."""
    folder = tmp_path_factory.mktemp("initialised")
    result = run_idp("init", "--demo", env=console_environment(folder), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.fixture
def initialised(initialised_template: Path, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment of an install on which ``idp init --demo`` ran (a copy of the template)."""
    shutil.copytree(initialised_template, tmp_path, dirs_exist_ok=True)
    return env


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    return lines[0]


def test_console_script_is_installed() -> None:
    assert IDP.is_file() and os.access(IDP, os.X_OK)


def test_init_demo_then_list_users(env: dict[str, str], tmp_path: Path) -> None:
    result = idp("init", "--demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Database upgraded from empty" in result.stdout
    assert (tmp_path / "idp.sqlite3").is_file()
    assert (tmp_path / "keys" / "keyring.json").is_file()

    listed = idp("user", "list", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {(row["email"], row["admin"]) for row in rows} == {
        ("alice@example.com", False),
        ("bob@example.com", False),
        ("admin@example.com", True),
    }

    again = run_idp("init", "--demo", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
    after = json.loads(run_idp("user", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert len(after) == 3


def test_user_add_reads_the_password_from_stdin(
    initialised: dict[str, str], tmp_path: Path
) -> None:
    result = idp(
        "user",
        "add",
        "carol@example.com",
        "--name",
        "Carol",
        "--password-stdin",
        "--json",
        env=initialised,
        cwd=tmp_path,
        input="carol password\n",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["email"] == "carol@example.com"


def test_bad_email_is_one_line(initialised: dict[str, str], tmp_path: Path) -> None:
    result = idp("user", "add", "bad-email", "--name", "X", env=initialised, cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "bad-email" in line
    rows = json.loads(run_idp("user", "list", "--json", env=initialised, cwd=tmp_path).stdout)
    assert len(rows) == 3


def test_duplicate_user_is_one_line(initialised: dict[str, str], tmp_path: Path) -> None:
    result = run_idp(
        "user", "add", "ALICE@example.com", "--name", "X", env=initialised, cwd=tmp_path
    )
    assert_one_line_error(result, 1)


@pytest.mark.parametrize(
    "args", [("user", "list"), ("init",), ("--help",)], ids=["user-list", "init", "help"]
)
def test_bad_setting_is_one_line_naming_it(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    env["IDP_ISSUER"] = "ftp://x"
    result = run_idp(*args, env=env, cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "issuer" in line
    assert not (tmp_path / "idp.sqlite3").exists()


def test_missing_database_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    result = run_idp("user", "list", env=env, cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "database" in line


def test_session_revoke_without_arguments_is_usage(
    initialised: dict[str, str], tmp_path: Path
) -> None:
    result = run_idp("session", "revoke", env=initialised, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "Usage:" in result.stderr


def test_unknown_command_is_usage(initialised: dict[str, str], tmp_path: Path) -> None:
    result = idp("frobnicate", env=initialised, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_help_lists_the_commands(env: dict[str, str], tmp_path: Path) -> None:
    result = run_idp("--help", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    commands = set()
    in_commands = False
    for line in result.stdout.splitlines():
        if line.strip() == "Commands:":
            in_commands = True
        elif in_commands and line.startswith("  ") and line.strip():
            commands.add(line.split()[0])
    assert {"init", "serve", "user", "session", "key"} <= commands


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (http://127.0.0.1)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_serve_answers_http(initialised: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(IDP), "serve", "--port", str(port), "--workers", "1"],
        env=initialised,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                status, body = http_get(base + "/healthz")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, (tmp_path / "serve.log").read_text()
        assert json.loads(body) == {"status": "ok"}

        status, page = http_get(base + "/login")
        assert status == 200
        assert 'name="username"' in page and 'name="password"' in page
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_init_demo_alone_registers_every_demo_app(env: dict[str, str], tmp_path: Path) -> None:
    """What `make demo` shows, seeded by `idp init --demo` with nothing prepared beforehand."""
    payroll_dir = tmp_path / "payroll-sp"
    env = {**env, "PAYROLL_SP_DIR": str(payroll_dir), "PAYROLL_BASE_URL": "http://127.0.0.1:6003"}
    result = run_idp("init", "--demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    (sp,) = json.loads(run_idp("sp", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert sp["entity_id"] == "http://127.0.0.1:6003/saml/metadata"
    assert sp["acs_urls"] == ["http://127.0.0.1:6003/saml/acs"]
    clients = json.loads(run_idp("client", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert {client["client_id"] for client in clients} == {"notes", "wiki"}

    # Payroll itself signs with the key pair registered for it: its metadata names that cert.
    from relying_party_demo.payroll import create_app
    from relying_party_demo.payroll import sp_metadata

    payroll = create_app(
        {"PAYROLL_SP_DIR": str(payroll_dir), "PAYROLL_BASE_URL": "http://127.0.0.1:6003"}
    )
    served = sp_metadata(payroll.extensions["payroll.sp_settings"])
    certificate = "".join((payroll_dir / "sp.crt").read_text().splitlines()[1:-1])
    assert certificate in served.replace("\n", "")
    assert (payroll_dir / "sp.key").stat().st_mode & 0o777 == 0o600


def test_init_demo_follows_the_demo_to_other_ports(
    initialised: dict[str, str], tmp_path: Path
) -> None:
    moved = {**initialised, "NOTES_BASE_URL": "http://127.0.0.1:6001"}
    result = run_idp("init", "--demo", env=moved, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    clients = json.loads(run_idp("client", "list", "--json", env=moved, cwd=tmp_path).stdout)
    uris = {client["client_id"]: client["redirect_uris"] for client in clients}
    assert uris == {
        "notes": ["http://127.0.0.1:6001/callback"],
        "wiki": ["http://127.0.0.1:5002/callback"],
    }
