"""CLI test helpers: run an ``idp`` command in-process against a test app."""

from __future__ import annotations

from click.testing import Result
from flask import Flask


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
