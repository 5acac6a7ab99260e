"""CLI test helpers: run an ``idp`` command in-process (a test app, or the console script)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from click.testing import CliRunner
from click.testing import Result
from flask import Flask

import idp
import idp.cli
from idp.db import get_database


def console_environment(folder: Path) -> dict[str, str]:
    """The console script's environment: no IDP_* setting but ours, its files in ``folder``.

    Its database is a SQLite file there; a test gives ``IDP_DATABASE_URL`` over it for another.
    """
    clean = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    return {
        **clean,
        "IDP_DATABASE_URL": f"sqlite:///{folder / 'idp.sqlite3'}",
        "IDP_KEYS_DIR": str(folder / "keys"),
        "IDP_INSTANCE_DIR": str(folder / "instance"),
        "IDP_SECRET_KEY": "console-test-secret-key",
        "IDP_ISSUER": "http://127.0.0.1:5000",
        # Cheap Argon2: `init --demo` hashes three passwords.
        "IDP_PASSWORD_HASH_TIME_COST": "1",
        "IDP_PASSWORD_HASH_MEMORY_COST": "1024",
        "IDP_PASSWORD_HASH_PARALLELISM": "1",
    }


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    """Invoke ``idp ARGS...`` with Click's runner; stdin is ``input``."""
    return app.test_cli_runner().invoke(args=list(args), input=input)


def assert_one_error_line(result: Result, message: str = "") -> None:
    """Exit status 1 and one ``Error: ...`` line on stderr (naming ``message``), no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output + result.stderr
    assert isinstance(result.exception, SystemExit)  # handled, not an uncaught exception


def console(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, input: str | bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``idp ARGS...`` as the console script does (``idp.cli.main``), in this process.

    Meanwhile the process's environment is exactly ``env``, its working directory ``cwd`` (if
    given) and stdin ``input``; the result reads as a finished ``idp`` process. A real start of
    the console script costs ~1.3 s of CPU (imports): ``tests/cli/test_console_script.py``
    keeps the tests that need the process itself (entry point, exit status, stdin, streams).
    """
    built: list[Flask] = []

    def create_app() -> Flask:
        app = idp.create_app()
        built.append(app)
        return app

    saved_environ, saved_argv, saved_factory = dict(os.environ), sys.argv, idp.cli.cli.create_app
    runner = CliRunner()
    try:
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["idp", *args]
        idp.cli.cli.create_app = create_app
        with (
            contextlib.chdir(cwd or os.getcwd()),
            runner.isolation(input=input) as (stdout, stderr, _),
        ):
            try:
                idp.cli.main()
                status: int = 0
            except SystemExit as stop:
                code = stop.code
                status = code if isinstance(code, int) else (0 if code is None else 1)
            output, errors = stdout.getvalue(), stderr.getvalue()
    finally:
        idp.cli.cli.create_app = saved_factory
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_environ)
        for app in built:
            get_database(app).engine.dispose()
    return subprocess.CompletedProcess(
        ["idp", *args], status, output.decode(errors="replace"), errors.decode(errors="replace")
    )
