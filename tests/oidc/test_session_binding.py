"""Every code, access token and refresh token dies with its login session (``sid``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.login import LoginSession
from idp.models.oidc import OAuthToken
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc

SCOPE = "openid profile offline_access"
IDLE_SECONDS = 30


@dataclass
class Issued:
    """What one browser's login handed out to one client."""

    browser: FlaskClient
    sid: str
    tokens: dict[str, Any]
    code: str
    verifier: str


def issue(browser: FlaskClient, client: oidc.Client) -> Issued:
    verifier, challenge = oidc.pkce_pair()
    params = {"code_challenge": challenge, "code_challenge_method": "S256", "scope": SCOPE}
    code = oidc.get_code(browser, client, nonce=secrets.token_urlsafe(8), **params)
    response = oidc.exchange(browser, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    tokens = response.get_json()
    # A second code, fetched but not yet exchanged when the session ends.
    spare_verifier, spare_challenge = oidc.pkce_pair()
    spare = oidc.get_code(
        browser,
        client,
        nonce=secrets.token_urlsafe(8),
        scope=SCOPE,
        code_challenge=spare_challenge,
        code_challenge_method="S256",
    )
    # The test clock runs ahead of PyJWT's: allow for it.
    id_token = oidc.decode(browser, tokens["id_token"], audience=client.client_id, leeway=3600)
    sid = id_token["sid"]
    return Issued(browser, sid, tokens, spare, spare_verifier)


def works(
    http: FlaskClient, client: oidc.Client, api: oidc.Client, issued: Issued
) -> dict[str, bool]:
    """Try each credential without spending any of them except through introspection."""
    access = issued.tokens["access_token"]
    refresh = issued.tokens["refresh_token"]
    introspected = {
        name: http.post("/introspect", data={"token": token}, auth=api.basic_auth).get_json()
        for name, token in (("access", access), ("refresh", refresh))
    }
    userinfo = http.get("/userinfo", headers={"Authorization": f"Bearer {access}"})
    return {
        "access_introspection": introspected["access"]["active"],
        "refresh_introspection": introspected["refresh"]["active"],
        "userinfo": userinfo.status_code == 200,
    }


def use_refresh_and_code(http: FlaskClient, client: oidc.Client, issued: Issued) -> list[Any]:
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": issued.tokens["refresh_token"]},
        auth=client.basic_auth,
    )
    exchanged = oidc.exchange(http, client, issued.code, code_verifier=issued.verifier)
    return [refreshed, exchanged]


def revoked_of(app: Flask, sid: str) -> list[bool]:
    with app.app_context():
        rows = db.get_session().scalars(
            select(OAuthToken)
            .join(LoginSession, OAuthToken.login_session_id == LoginSession.id)
            .where(LoginSession.sid == sid)
        )
        return [row.revoked_at is not None for row in rows]


@pytest.fixture
def short_idle(settings: dict[str, Any]) -> None:
    """Sessions idle out before codes and access tokens expire: only the session can end them."""
    settings["session_idle_timeout"] = IDLE_SECONDS
    settings["access_token_ttl"] = 3600


@pytest.fixture
def client(app: Flask) -> oidc.Client:
    return oidc.register(app, "Notes")


@pytest.fixture
def api(app: Flask) -> oidc.Client:
    return oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )


def end_by_logout(app: Flask, alice: Issued, clock: Clock) -> None:
    assert AuthActions(alice.browser).logout().status_code == 200


def end_by_session_revoke(app: Flask, alice: Issued, clock: Clock) -> None:
    result = app.test_cli_runner().invoke(args=["session", "revoke", alice.sid])
    assert result.exit_code == 0, result.output


def end_by_user_revoke(app: Flask, alice: Issued, clock: Clock) -> None:
    result = app.test_cli_runner().invoke(args=["session", "revoke", "--user", "alice@example.com"])
    assert result.exit_code == 0, result.output


def end_by_switching_user(app: Flask, alice: Issued, clock: Clock) -> None:
    carol = make_user(app, "carol@example.com", "carol's long enough password")
    assert AuthActions(alice.browser).login(carol.email, carol.password).status_code == 302


def end_by_idle_expiry(app: Flask, alice: Issued, clock: Clock) -> None:
    clock.advance(seconds=IDLE_SECONDS - 20 + 1)


ENDINGS = {
    "logout": end_by_logout,
    "session-revoke": end_by_session_revoke,
    "user-revoke": end_by_user_revoke,
    "switch-user": end_by_switching_user,
    "idle-expiry": end_by_idle_expiry,
}


@pytest.mark.usefixtures("short_idle")
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_ending_the_session_ends_its_credentials(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    client: oidc.Client,
    api: oidc.Client,
    clock: Clock,
    ending: str,
) -> None:
    assert app.extensions["idp.settings"].session_idle_timeout.total_seconds() == IDLE_SECONDS
    alice = issue(http, client)
    clock.advance(seconds=20)
    bob_user = make_user(app, "bob@example.com", "bob's long enough password")
    bob_browser = app.test_client()
    assert AuthActions(bob_browser).login(bob_user.email, bob_user.password).status_code == 302
    bob = issue(bob_browser, client)
    everything = {"access_introspection": True, "refresh_introspection": True, "userinfo": True}
    assert works(http, client, api, alice) == everything

    ENDINGS[ending](app, alice, clock)

    assert works(http, client, api, alice) == dict.fromkeys(everything, False)
    refreshed, exchanged = use_refresh_and_code(http, client, alice)
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"
    assert exchanged.status_code == 400
    assert exchanged.get_json()["error"] == "invalid_grant"
    if ending != "idle-expiry":
        # An ending someone did (not merely time passing) marks the rows revoked.
        assert revoked_of(app, alice.sid) and all(revoked_of(app, alice.sid))

    # The other session is untouched and keeps working.
    assert revoked_of(app, bob.sid) == [False]
    assert works(http, client, api, bob) == everything
    refreshed, exchanged = use_refresh_and_code(http, client, bob)
    assert refreshed.status_code == 200, refreshed.data
    assert exchanged.status_code == 200, exchanged.data


def test_ending_a_session_twice_changes_nothing_more(
    app: Flask, http: FlaskClient, logged_in: TestUser, client: oidc.Client, clock: Clock
) -> None:
    alice = issue(http, client)
    end_by_session_revoke(app, alice, clock)
    with app.app_context():
        first = list(db.get_session().scalars(select(OAuthToken.revoked_at)))
    clock.advance(seconds=5)
    result = app.test_cli_runner().invoke(args=["session", "revoke", alice.sid])
    assert result.exit_code == 0
    assert "already ended" in result.output
    with app.app_context():
        assert list(db.get_session().scalars(select(OAuthToken.revoked_at))) == first


def test_tokens_of_a_login_carry_its_sid(
    app: Flask, http: FlaskClient, logged_in: TestUser, client: oidc.Client
) -> None:
    alice = issue(http, client)
    other = oidc.register(app, "Wiki", redirect_uris=["https://wiki.example.com/cb"])
    second = issue(http, other)
    access = oidc.decode(http, alice.tokens["access_token"], audience=client.client_id)
    assert access["sid"] == alice.sid == second.sid
    listed = app.test_cli_runner().invoke(args=["session", "list", "--json"])
    assert alice.sid in listed.output
