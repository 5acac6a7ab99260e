"""``idp client add NAME --service-account --scope SCOPE...``."""

from __future__ import annotations

import json

from flask import Flask

from tests.helpers.cli import run


def test_service_account_gets_client_credentials_for_its_scopes(app: Flask) -> None:
    result = run(app, "client", "add", "Robot", "--service-account", "--scope", "admin", "--json")
    assert result.exit_code == 0, result.output
    client_id = json.loads(result.stdout)["client_id"]
    http = app.test_client()
    secret = json.loads(result.stdout)["client_secret"]
    token = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        auth=(client_id, secret),
    )
    assert token.status_code == 200 and token.get_json()["scope"] == "admin"
    code_flow = http.get(
        "/authorize", query_string={"client_id": client_id, "response_type": "code"}
    )
    assert code_flow.status_code == 400  # no redirect URI, no code grant


def test_service_account_usage_errors(app: Flask) -> None:
    for args in (
        ("--service-account",),
        ("--service-account", "--scope", "admin", "--redirect-uri", "https://x.example/cb"),
        ("--service-account", "--scope", "admin", "--public"),
        ("--scope", "admin"),
    ):
        result = run(app, "client", "add", "Robot", *args)
        assert result.exit_code == 2, (args, result.output)
    result = run(app, "client", "add", "Robot", "--service-account", "--scope", 'bad"scope')
    assert result.exit_code == 1 and "scope" in result.stderr
