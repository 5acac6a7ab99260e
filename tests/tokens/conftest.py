"""Personal access token fixtures: tokens created with the real CLI, used over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event

from idp import db
from tests.helpers.cli import run


def create_pat(app: Flask, email: str, *options: str, name: str = "CI script") -> dict[str, Any]:
    """Run ``idp token create EMAIL --name NAME OPTIONS --json``; return what it printed."""
    result = run(app, "token", "create", email, "--name", name, *options, "--json")
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def list_pats(app: Flask, *options: str) -> list[dict[str, Any]]:
    result = run(app, "token", "list", *options, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def count_statements(app: Flask) -> Iterator[list[str]]:
    """Collect every SQL statement the app's engine runs inside the block."""
    statements: list[str] = []
    engine = db.get_database(app).engine

    def collect(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", collect)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", collect)
