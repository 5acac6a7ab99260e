"""``idp client add|list``: what the README promises, and a registered client really works."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy import select

from idp import db
from idp.models.oidc import OAuthClient
from tests.conftest import TestUser
from tests.helpers import cli
from tests.helpers import oidc
from tests.helpers.cli import assert_one_error_line

REDIRECT = "https://rp.example.com/callback"


def client_command(app: Flask, *args: str, input: str | None = None) -> Result:
    return cli.run(app, "client", *args, input=input)


def add_json(app: Flask, *args: str, input: str | None = None) -> dict[str, Any]:
    result = client_command(app, "add", *args, "--json", input=input)
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


def clients(app: Flask) -> list[OAuthClient]:
    with app.app_context():
        rows = list(db.get_session().scalars(select(OAuthClient).order_by(OAuthClient.id)))
        db.get_session().expunge_all()
        return rows


def only_client(app: Flask) -> OAuthClient:
    (row,) = clients(app)
    return row


def run_code_flow(http: FlaskClient, client: oidc.Client) -> dict[str, Any]:
    body = oidc.issue_tokens(http, client)
    oidc.decode(http, body["id_token"], audience=client.client_id)
    return body


def test_add_prints_credentials_and_stores_only_the_hash(app: Flask) -> None:
    body = add_json(app, "Notes", "--redirect-uri", REDIRECT)
    assert set(body) == {"client_id", "client_secret"}
    secret = body["client_secret"]
    assert len(secret) >= 32
    row = only_client(app)
    assert row.client_id == body["client_id"]
    assert row.client_name == "Notes"
    assert row.redirect_uris == [REDIRECT]
    assert row.token_endpoint_auth_method == "client_secret_basic"
    assert row.is_trusted is False
    assert row.client_secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    with app.app_context():
        raw = db.get_session().execute(select(OAuthClient.__table__)).one()
    assert all(secret not in str(value) for value in raw)


def test_plain_output_shows_the_secret_once(app: Flask) -> None:
    result = client_command(app, "add", "Notes", "--redirect-uri", REDIRECT)
    assert result.exit_code == 0, result.output
    row = only_client(app)
    assert f"client_id: {row.client_id}" in result.stdout
    assert "client_secret: " in result.stdout


def test_registered_client_completes_the_code_flow(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    body = add_json(app, "Notes", "--redirect-uri", REDIRECT, "--trusted")
    client = oidc.Client(body["client_id"], body["client_secret"], REDIRECT)
    # Trusted: no consent page on the way.
    first = oidc.authorize(http, client, nonce="n-1")
    assert first.status_code == 302
    assert "code" in oidc.query_of(first.headers["Location"])
    tokens = run_code_flow(http, client)
    assert tokens["token_type"].lower() == "bearer"


def test_untrusted_client_asks_for_consent(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    body = add_json(app, "Notes", "--redirect-uri", REDIRECT)
    client = oidc.Client(body["client_id"], body["client_secret"], REDIRECT)
    page = oidc.authorize(http, client)
    assert page.status_code == 200
    assert b'name="decision"' in page.data
    run_code_flow(http, client)


def test_public_client_has_no_secret_and_uses_pkce(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    body = add_json(app, "Wiki", "--redirect-uri", REDIRECT, "--public", "--trusted")
    assert set(body) == {"client_id"}
    row = only_client(app)
    assert row.token_endpoint_auth_method == "none"
    assert row.client_secret_hash is None
    client = oidc.Client(body["client_id"], None, REDIRECT)
    run_code_flow(http, client)
    # PKCE is required of a public client.
    response = oidc.authorize(http, client)
    assert response.status_code == 302
    assert oidc.query_of(response.headers["Location"])["error"] == "invalid_request"


def test_client_secret_post(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    body = add_json(app, "Notes", "--redirect-uri", REDIRECT, "--auth-method", "client_secret_post")
    assert only_client(app).token_endpoint_auth_method == "client_secret_post"
    client = oidc.Client(body["client_id"], body["client_secret"], REDIRECT)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    response = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": client.client_id,
            "client_secret": body["client_secret"],
        },
    )
    assert response.status_code == 200, response.data


def write_jwks(tmp_path: Path, *, private: bool = False) -> tuple[Path, dict[str, Any]]:
    key = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    jwk = {**key.as_dict(private=private), "kid": "rp-key-1", "use": "sig", "alg": "ES256"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path, {"keys": [jwk]}


def test_private_key_jwt_with_a_jwks_file(app: Flask, tmp_path: Path) -> None:
    path, jwks = write_jwks(tmp_path)
    body = add_json(
        app,
        "Notes",
        "--redirect-uri",
        REDIRECT,
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        str(path),
    )
    assert set(body) == {"client_id"}
    row = only_client(app)
    assert row.token_endpoint_auth_method == "private_key_jwt"
    assert row.jwks == jwks
    assert row.client_secret_hash is None


@pytest.mark.parametrize("problem", ["no-keys", "private-key", "not-json", "missing-file"])
def test_private_key_jwt_needs_public_keys(app: Flask, tmp_path: Path, problem: str) -> None:
    args = ["add", "Notes", "--redirect-uri", REDIRECT, "--auth-method", "private_key_jwt"]
    if problem == "private-key":
        path, _ = write_jwks(tmp_path, private=True)
        args += ["--jwks", str(path)]
    elif problem == "not-json":
        path = tmp_path / "jwks.json"
        path.write_text("{not json")
        args += ["--jwks", str(path)]
    elif problem == "missing-file":
        args += ["--jwks", str(tmp_path / "absent.json")]
    result = client_command(app, *args)
    assert_one_error_line(result)
    assert clients(app) == []


def test_logout_uris(app: Flask) -> None:
    add_json(
        app,
        "Notes",
        "--redirect-uri",
        "http://127.0.0.1:5001/callback",
        "--post-logout-redirect-uri",
        "http://127.0.0.1:5001/",
        "--post-logout-redirect-uri",
        "https://notes.example.com/bye",
        "--backchannel-logout-uri",
        "http://127.0.0.1:5001/backchannel-logout",
    )
    row = only_client(app)
    assert row.redirect_uris == ["http://127.0.0.1:5001/callback"]
    assert row.post_logout_redirect_uris == [
        "http://127.0.0.1:5001/",
        "https://notes.example.com/bye",
    ]
    assert row.backchannel_logout_uri == "http://127.0.0.1:5001/backchannel-logout"


def test_chosen_client_id(app: Flask) -> None:
    body = add_json(app, "Notes", "--redirect-uri", REDIRECT, "--client-id", "notes")
    assert body["client_id"] == "notes"
    assert only_client(app).client_id == "notes"


def test_duplicate_client_id_is_refused(app: Flask) -> None:
    add_json(app, "Notes", "--redirect-uri", REDIRECT, "--client-id", "notes")
    before = only_client(app)
    result = client_command(app, "add", "Other", "--redirect-uri", REDIRECT, "--client-id", "notes")
    assert_one_error_line(result)
    after = only_client(app)
    assert (after.id, after.client_name, after.client_secret_hash) == (
        before.id,
        before.client_name,
        before.client_secret_hash,
    )


def test_secret_from_stdin(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    secret = secrets.token_urlsafe(32)
    body = add_json(
        app, "Notes", "--redirect-uri", REDIRECT, "--trusted", "--secret-stdin", input=secret + "\n"
    )
    assert body["client_secret"] == secret
    assert only_client(app).client_secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    run_code_flow(http, oidc.Client(body["client_id"], secret, REDIRECT))


@pytest.mark.parametrize("given", ["short-secret\n", "\n", ""], ids=["short", "empty", "eof"])
def test_unusable_secret_from_stdin_is_refused(app: Flask, given: str) -> None:
    result = client_command(
        app, "add", "Notes", "--redirect-uri", REDIRECT, "--secret-stdin", input=given
    )
    assert_one_error_line(result)
    assert given.strip() not in result.stderr or not given.strip()
    assert clients(app) == []


@pytest.mark.parametrize(
    "uri",
    [
        "https://rp.example.com/callback#fragment",
        "javascript:alert(1)",
        "http://rp.example.com/callback",
        "/callback",
        "data:text/html,hi",
        "https:///no-host",
    ],
)
def test_bad_redirect_uri_is_refused(app: Flask, uri: str) -> None:
    result = client_command(app, "add", "Notes", "--redirect-uri", REDIRECT, "--redirect-uri", uri)
    assert_one_error_line(result)
    assert clients(app) == []


@pytest.mark.parametrize("option", ["--post-logout-redirect-uri", "--backchannel-logout-uri"])
def test_bad_logout_uri_is_refused(app: Flask, option: str) -> None:
    result = client_command(
        app, "add", "Notes", "--redirect-uri", REDIRECT, option, "http://rp.example.com/out"
    )
    assert_one_error_line(result)
    assert clients(app) == []


@pytest.mark.parametrize(
    "args",
    [
        ["add", "Notes"],
        [
            "add",
            "Notes",
            "--redirect-uri",
            REDIRECT,
            "--public",
            "--auth-method",
            "client_secret_post",
        ],
        ["add", "Notes", "--redirect-uri", REDIRECT, "--auth-method", "none"],
    ],
    ids=["no-redirect-uri", "public-with-method", "method-none"],
)
def test_usage_errors_exit_2(app: Flask, args: list[str]) -> None:
    result = client_command(app, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert clients(app) == []


def test_list_json(app: Flask) -> None:
    first = add_json(app, "Notes", "--redirect-uri", REDIRECT, "--trusted")
    second = add_json(app, "Wiki", "--redirect-uri", "https://wiki.example.com/cb", "--public")
    result = client_command(app, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["client_id"] for row in rows] == [first["client_id"], second["client_id"]]
    assert rows[0]["name"] == "Notes" and rows[0]["trusted"] is True
    assert rows[1]["auth_method"] == "none"
    assert rows[1]["redirect_uris"] == ["https://wiki.example.com/cb"]
    assert first["client_secret"] not in result.stdout


def test_list_plain_and_empty(app: Flask) -> None:
    result = client_command(app, "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    add_json(app, "Notes", "--redirect-uri", REDIRECT, "--client-id", "notes")
    plain = client_command(app, "list")
    assert plain.exit_code == 0
    assert "notes" in plain.stdout and "Notes" in plain.stdout
