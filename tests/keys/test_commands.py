"""``idp key list|rotate`` through Flask's CLI runner, on the test app's clock and database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from idp import db
from idp.keys.store import get_key_store
from idp.models.audit import AuditEvent
from tests.conftest import Clock


def invoke(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["key", *args])


def audit_rows(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == "key_rotated")
        return list(db.get_session().scalars(query.order_by(AuditEvent.id)))


def test_list_prints_a_table(app: Flask) -> None:
    result = invoke(app, "list")

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["KID", "KIND", "STATE", "ACTIVATES"]
    assert sorted(row.split()[1] for row in rows) == ["ES256", "RS256", "SAML"]
    assert all(row.split()[2] == "active" for row in rows)


def test_list_json(app: Flask) -> None:
    result = invoke(app, "list", "--json")

    assert result.exit_code == 0, result.output
    keys = json.loads(result.stdout)
    assert len(keys) == 3
    for key in keys:
        assert set(key) == {"kid", "kind", "state", "created", "activates"}
        assert key["state"] == "active"
        datetime.fromisoformat(key["activates"])


def test_rotate_publishes_then_signs_and_audits(app: Flask, clock: Clock) -> None:
    with app.app_context():
        old = get_key_store().signing_key("RS256", clock.now).kid

    result = invoke(app, "rotate")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all("starts signing at" in line for line in lines)
    listed = json.loads(invoke(app, "list", "--json").stdout)
    new = {key["kid"]: key for key in listed if key["state"] == "next"}
    assert len(new) == 3
    assert all(kid in result.stdout for kid in new)
    with app.app_context():
        assert get_key_store().signing_key("RS256", clock.now).kid == old

    rows = audit_rows(app)
    assert sorted(row.details["kid"] for row in rows) == sorted(new)
    for row in rows:
        assert row.details["kind"] == new[row.details["kid"]]["kind"]
        assert row.details["activates_at"] == new[row.details["kid"]]["activates"]

    clock.advance(minutes=10)  # the JWKS max age: caches now hold the new keys
    with app.app_context():
        assert get_key_store().signing_key("RS256", clock.now).kid in new
    states = {key["kid"]: key["state"] for key in json.loads(invoke(app, "list", "--json").stdout)}
    assert states[old] == "retiring"


def test_rotate_now_json(app: Flask, clock: Clock) -> None:
    result = invoke(app, "rotate", "--now", "--json")

    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert sorted(key["kind"] for key in created) == ["ES256", "RS256", "SAML"]
    assert all(key["state"] == "active" for key in created)
    with app.app_context():
        signing = get_key_store().signing_key("ES256", clock.now).kid
    assert signing in {key["kid"] for key in created}
    assert len(audit_rows(app)) == 3


def test_rotate_text_says_when_immediate(app: Flask) -> None:
    result = invoke(app, "rotate", "--now")
    assert result.exit_code == 0, result.output
    assert all(line.endswith(": signs now.") for line in result.stdout.splitlines())


def test_rotate_before_init_fails_with_one_line(
    settings: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    empty = tmp_path / "no-keys-yet"
    settings["keys_dir"] = str(empty)
    app: Flask = request.getfixturevalue("app")

    result = invoke(app, "rotate")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: no signing keys in ")
    assert "run `idp init`" in result.stderr
    assert "Traceback" not in result.output
    assert audit_rows(app) == []
    assert not empty.exists()

    listed = invoke(app, "list")
    assert listed.exit_code == 0
    assert "idp init" in listed.stdout
