"""Personal access token fixtures: tokens created with the real CLI, used over real HTTP."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

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
