"""Token introspection (RFC 7662): authenticated callers, and ``active`` tells the truth."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc

SCOPE = "openid profile email offline_access"


def issue(http: FlaskClient, client: oidc.Client, scope: str = SCOPE) -> dict[str, Any]:
    return oidc.issue_tokens(http, client, scope)


def introspect(http: FlaskClient, caller: oidc.Client, token: str, **form: str) -> Any:
    response = http.post("/introspect", data={"token": token, **form}, auth=caller.basic_auth)
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


@pytest.fixture
def client(app: Flask) -> oidc.Client:
    return oidc.register(app, "Notes")


@pytest.fixture
def api(app: Flask) -> oidc.Client:
    """A resource server: a confidential client registered to introspect any token."""
    return oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )


@pytest.fixture
def tokens(http: FlaskClient, logged_in: TestUser, client: oidc.Client) -> dict[str, Any]:
    return issue(http, client)


def test_active_access_token(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    body = introspect(http, api, tokens["access_token"])
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    access = oidc.decode(http, tokens["access_token"], audience=client.client_id)
    assert body["active"] is True
    assert body["scope"] == SCOPE
    assert body["client_id"] == client.client_id
    assert body["sub"] == id_token["sub"] == access["sub"]
    assert body["sid"] == id_token["sid"]
    assert body["exp"] == access["exp"]
    assert body["iat"] == access["iat"]
    assert body["token_type"] == "Bearer"
    assert body["iss"] == "http://idp.test"


def test_the_client_may_introspect_its_own_token(
    http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]
) -> None:
    assert introspect(http, client, tokens["access_token"])["active"] is True


def test_another_client_learns_nothing_about_a_token(
    app: Flask, http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]
) -> None:
    # Any confidential client could read the claims (sub, sid, scope) of every other token.
    other = oidc.register(app, "Other", redirect_uris=["https://other.example.com/cb"])
    before = oidc.token_rows(app)

    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert introspect(http, other, token) == {"active": False}

    assert oidc.token_rows(app) == before
    # The token itself is still alive for its own client.
    assert introspect(http, client, tokens["refresh_token"])["active"] is True


def test_the_resource_server_flag_is_set_on_the_command_line(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    runner = app.test_cli_runner()
    added = runner.invoke(
        args=[
            "client",
            "add",
            "Photos API",
            "--redirect-uri",
            "https://photos.example.com/unused",
            "--resource-server",
            "--json",
        ]
    )
    assert added.exit_code == 0, added.output
    credentials = json.loads(added.output)
    photos = oidc.Client(credentials["client_id"], credentials["client_secret"], "")

    assert introspect(http, photos, tokens["access_token"])["active"] is True
    listed = runner.invoke(args=["client", "list", "--json"])
    flags = {row["name"]: row["resource_server"] for row in json.loads(listed.output)}
    assert flags == {"Notes": False, "Photos API": True}
    plain = runner.invoke(args=["client", "list"]).output.splitlines()
    assert [line.split("\t")[-1] for line in plain if "Photos API" in line] == ["resource_server"]


def test_client_secret_post_caller(app: Flask, http: FlaskClient, tokens: dict[str, Any]) -> None:
    caller = oidc.register(
        app, "Post API", token_endpoint_auth_method="client_secret_post", is_resource_server=True
    )
    response = http.post(
        "/introspect",
        data={
            "token": tokens["access_token"],
            "client_id": caller.client_id,
            "client_secret": caller.client_secret or "",
        },
    )
    assert response.status_code == 200
    assert response.get_json()["active"] is True


def test_active_refresh_token(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    body = introspect(http, api, tokens["refresh_token"])
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert body["active"] is True
    assert body["client_id"] == client.client_id
    assert body["sub"] == id_token["sub"]
    assert body["sid"] == id_token["sid"]
    assert body["scope"] == SCOPE
    assert body["token_type"] == "refresh_token"
    assert body["exp"] > id_token["exp"]


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
@pytest.mark.parametrize("hint", ["access_token", "refresh_token"])
def test_a_wrong_hint_does_not_hide_the_token(
    http: FlaskClient, api: oidc.Client, tokens: dict[str, Any], which: str, hint: str
) -> None:
    # RFC 7662 §2.1: "the server MUST extend its search across all of its supported token types".
    assert introspect(http, api, tokens[which], token_type_hint=hint)["active"] is True


def test_expired_access_token_is_inactive(
    http: FlaskClient, api: oidc.Client, tokens: dict[str, Any], clock: Clock
) -> None:
    assert introspect(http, api, tokens["access_token"])["active"] is True
    clock.advance(seconds=tokens["expires_in"])
    assert introspect(http, api, tokens["access_token"]) == {"active": False}
    # The refresh token outlives it.
    assert introspect(http, api, tokens["refresh_token"])["active"] is True


def test_revoked_tokens_are_inactive(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    response = http.post("/revoke", data={"token": tokens["refresh_token"]}, auth=client.basic_auth)
    assert response.status_code == 200
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}
    assert introspect(http, api, tokens["access_token"]) == {"active": False}


def test_a_rotated_refresh_token_is_inactive(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    response = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.basic_auth,
    )
    assert response.status_code == 200, response.data
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}
    assert introspect(http, api, response.get_json()["refresh_token"])["active"] is True


@pytest.mark.parametrize(
    "token",
    [
        "",
        "x",
        "a.b.c",
        "é.é.é",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "A" * 10000,
        "A.A." + "A" * 10000,
        secrets.token_urlsafe(32),
    ],
    # A NUL is a malformed request, not a token: tests/test_malformed_input.py.
    ids=["empty", "short", "dots", "non-ascii", "alg-none", "long", "long-jwt", "unknown"],
)
def test_unknown_and_garbage_tokens_are_inactive(
    app: Flask, http: FlaskClient, api: oidc.Client, tokens: dict[str, Any], token: str
) -> None:
    before = oidc.token_rows(app)
    assert introspect(http, api, token) == {"active": False}
    assert oidc.token_rows(app) == before


def test_a_token_of_a_disabled_client_is_inactive(
    app: Flask, http: FlaskClient, client: oidc.Client, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    from idp.models.oidc import OAuthClient

    with app.app_context():
        row = db.get_session().scalar(
            select(OAuthClient).where(OAuthClient.client_id == client.client_id)
        )
        assert row is not None
        row.is_disabled = True
        db.get_session().commit()
    assert introspect(http, api, tokens["access_token"]) == {"active": False}
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}


# -- client authentication ------------------------------------------------------------------


def assert_invalid_client(response: Any) -> None:
    assert response.status_code == 401, response.data
    assert response.get_json()["error"] == "invalid_client"
    assert "active" not in response.get_json()


def test_no_client_authentication_is_invalid_client(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    assert_invalid_client(http.post("/introspect", data={"token": tokens["access_token"]}))
    assert oidc.token_rows(app) == before


def test_wrong_secret_is_invalid_client(
    app: Flask, http: FlaskClient, api: oidc.Client, tokens: dict[str, Any]
) -> None:
    before = oidc.token_rows(app)
    response = http.post(
        "/introspect",
        data={"token": tokens["access_token"]},
        auth=(api.client_id, "not-the-secret-" + "x" * 20),
    )
    assert_invalid_client(response)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert oidc.token_rows(app) == before


def test_a_public_client_may_not_introspect(
    app: Flask, http: FlaskClient, tokens: dict[str, Any]
) -> None:
    public = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    before = oidc.token_rows(app)
    response = http.post(
        "/introspect", data={"token": tokens["access_token"], "client_id": public.client_id}
    )
    assert_invalid_client(response)
    assert oidc.token_rows(app) == before


# -- the login session ended ----------------------------------------------------------------


def test_logout_through_the_form_deactivates_the_tokens(
    http: FlaskClient, api: oidc.Client, tokens: dict[str, Any], auth: AuthActions
) -> None:
    assert introspect(http, api, tokens["access_token"])["active"] is True
    response = auth.logout()
    assert response.status_code == 200
    assert introspect(http, api, tokens["access_token"]) == {"active": False}
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}


def test_session_revoke_command_deactivates_the_tokens(
    app: Flask,
    http: FlaskClient,
    client: oidc.Client,
    api: oidc.Client,
    tokens: dict[str, Any],
) -> None:
    sid = oidc.decode(http, tokens["id_token"], audience=client.client_id)["sid"]
    assert introspect(http, api, tokens["refresh_token"])["active"] is True
    result = app.test_cli_runner().invoke(args=["session", "revoke", sid])
    assert result.exit_code == 0, result.output
    assert introspect(http, api, tokens["access_token"]) == {"active": False}
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}


@pytest.fixture
def short_idle(settings: dict[str, Any]) -> None:
    """An idle timeout shorter than the access token's life, so only the session can end it."""
    settings["session_idle_timeout"] = 600
    settings["access_token_ttl"] = 3600


@pytest.mark.usefixtures("short_idle")
def test_idle_expiry_deactivates_the_tokens(
    app: Flask, http: FlaskClient, api: oidc.Client, tokens: dict[str, Any], clock: Clock
) -> None:
    assert app.extensions["idp.settings"].session_idle_timeout.total_seconds() == 600
    clock.advance(seconds=599)
    assert introspect(http, api, tokens["access_token"])["active"] is True
    assert introspect(http, api, tokens["refresh_token"])["active"] is True
    clock.advance(seconds=2)
    assert introspect(http, api, tokens["access_token"]) == {"active": False}
    assert introspect(http, api, tokens["refresh_token"]) == {"active": False}
