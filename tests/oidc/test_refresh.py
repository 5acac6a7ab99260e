"""Refresh tokens: offline_access only, rotation, reuse detection, grace retry (RFC 6749 §6).

Reuse detection follows RFC 9700 §4.14.2; the refreshed ID token follows OIDC Core §12.2.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.oidc.test_token import assert_token_error
from tests.oidc.test_token import introspect
from tests.oidc.test_token import state_of

OFFLINE = "openid email offline_access"


@pytest.fixture
def rp(app: Flask) -> oidc.Client:
    return oidc.register(app, "Notes")


def login_tokens(
    http: FlaskClient, client: oidc.Client, scope: str = OFFLINE, nonce: str | None = None
) -> dict[str, Any]:
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http,
        client,
        scope=scope,
        nonce=nonce or secrets.token_urlsafe(8),
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    body: dict[str, Any] = response.get_json()
    return body


def refresh(http: FlaskClient, client: oidc.Client, refresh_token: str, **form: str) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    if client.client_secret is None:
        return http.post("/token", data={**data, "client_id": client.client_id})
    return http.post("/token", data=data, auth=client.basic_auth)


def refreshed(http: FlaskClient, client: oidc.Client, refresh_token: str, **form: str) -> Any:
    response = refresh(http, client, refresh_token, **form)
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def is_active(http: FlaskClient, client: oidc.Client, token: str) -> bool:
    active: bool = introspect(http, client, token)["active"]
    return active


def reuse_events(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == "refresh_token_reused")
        return list(db.get_session().scalars(query))


def test_no_refresh_token_without_offline_access(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    body = login_tokens(http, rp, scope="openid email")

    assert "refresh_token" not in body
    assert state_of(app) == (1, 0, 1)


def test_no_refresh_token_for_a_client_without_the_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Short", grant_types=["authorization_code"])

    body = login_tokens(http, client)

    assert "refresh_token" not in body
    assert body["scope"] == OFFLINE


def test_refresh_rotates_the_token(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    first = login_tokens(http, rp)
    assert first["refresh_token"]

    second = refreshed(http, rp, first["refresh_token"])

    assert second["refresh_token"] not in (first["refresh_token"], None)
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == OFFLINE
    assert second["token_type"] == "Bearer"
    assert second["expires_in"] == 600
    # The new pair works; so does the old access token until it expires.
    assert is_active(http, rp, second["access_token"])
    assert is_active(http, rp, first["access_token"])
    assert introspect(http, rp, second["refresh_token"])["active"] is True
    assert introspect(http, rp, first["refresh_token"]) == {"active": False}
    third = refreshed(http, rp, second["refresh_token"])
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_reuse_after_the_grace_window_revokes_the_family(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    first = login_tokens(http, rp)
    second = refreshed(http, rp, first["refresh_token"])
    third = refreshed(http, rp, second["refresh_token"])
    clock.advance(seconds=6)
    tokens_before = state_of(app)[0]

    reuse = refresh(http, rp, first["refresh_token"])

    assert_token_error(reuse, "invalid_grant")
    tokens, revoked, _ = state_of(app)
    assert tokens == tokens_before  # nothing issued
    assert revoked == tokens  # every issuance of the family
    assert_token_error(refresh(http, rp, third["refresh_token"]), "invalid_grant")
    for body in (first, second, third):
        assert not is_active(http, rp, body["access_token"])
    (event,) = reuse_events(app)
    assert event.rp == rp.client_id and event.user_id == logged_in.id
    assert first["refresh_token"] not in str(event.details)


def test_reuse_of_a_used_token_whose_child_was_used_revokes_at_once(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    # Within the grace window, but the child was used: not a lost response, a stolen token.
    first = login_tokens(http, rp)
    second = refreshed(http, rp, first["refresh_token"])
    third = refreshed(http, rp, second["refresh_token"])

    assert_token_error(refresh(http, rp, first["refresh_token"]), "invalid_grant")

    assert_token_error(refresh(http, rp, third["refresh_token"]), "invalid_grant")
    assert not is_active(http, rp, third["access_token"])
    assert len(reuse_events(app)) == 1


def test_reuse_leaves_other_families_alone(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    victim = login_tokens(http, rp)
    refreshed(http, rp, victim["refresh_token"])
    bystander = login_tokens(http, rp, scope="openid offline_access")
    clock.advance(seconds=6)

    assert_token_error(refresh(http, rp, victim["refresh_token"]), "invalid_grant")

    assert is_active(http, rp, bystander["access_token"])
    assert refresh(http, rp, bystander["refresh_token"]).status_code == 200


def test_retry_within_the_grace_window_replaces_the_lost_child(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    first = login_tokens(http, rp)
    lost = refreshed(http, rp, first["refresh_token"])  # the client never saw this response
    clock.advance(seconds=4)

    retry = refreshed(http, rp, first["refresh_token"])

    assert retry["refresh_token"] not in (first["refresh_token"], lost["refresh_token"])
    assert not is_active(http, rp, lost["access_token"])
    assert is_active(http, rp, retry["access_token"])
    # The lost child is dead, and presenting it does not kill its replacement.
    assert_token_error(refresh(http, rp, lost["refresh_token"]), "invalid_grant")
    assert is_active(http, rp, retry["access_token"])
    assert refreshed(http, rp, retry["refresh_token"])["refresh_token"]
    # A thief holding the client's credentials looks the same: every reuse is audited.
    (event,) = reuse_events(app)
    assert event.rp == rp.client_id and event.user_id == logged_in.id
    assert event.details["within_grace"] is True


def test_retry_is_allowed_once(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    first = login_tokens(http, rp)
    refreshed(http, rp, first["refresh_token"])
    clock.advance(seconds=1)
    retry = refreshed(http, rp, first["refresh_token"])
    clock.advance(seconds=1)

    again = refresh(http, rp, first["refresh_token"])

    assert_token_error(again, "invalid_grant")
    assert_token_error(refresh(http, rp, retry["refresh_token"]), "invalid_grant")
    assert not is_active(http, rp, retry["access_token"])
    grace, reuse = reuse_events(app)
    assert grace.details["within_grace"] is True
    assert reuse.details["within_grace"] is False


def test_a_public_client_has_no_grace_window(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    # Nothing but the token authenticates a PKCE app's refresh: a replayed old token is theft.
    wiki = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    api = oidc.register(app, "API", is_resource_server=True)
    first = login_tokens(http, wiki)
    child = refreshed(http, wiki, first["refresh_token"])
    clock.advance(seconds=1)
    tokens_before = state_of(app)[0]

    replay = refresh(http, wiki, first["refresh_token"])

    assert_token_error(replay, "invalid_grant")
    tokens, revoked, _ = state_of(app)
    assert tokens == tokens_before  # the replayer got nothing
    assert revoked == tokens  # the whole family, the legitimate child included
    assert_token_error(refresh(http, wiki, child["refresh_token"]), "invalid_grant")
    assert not is_active(http, api, child["access_token"])
    (event,) = reuse_events(app)
    assert event.rp == wiki.client_id and event.user_id == logged_in.id
    assert event.details["within_grace"] is False


def test_retry_of_an_older_ancestor_is_reuse(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    # Only the immediate predecessor of the newest token may be retried.
    first = login_tokens(http, rp)
    second = refreshed(http, rp, first["refresh_token"])
    clock.advance(seconds=1)
    third = refreshed(http, rp, second["refresh_token"])

    assert_token_error(refresh(http, rp, first["refresh_token"]), "invalid_grant")

    assert not is_active(http, rp, third["access_token"])


def test_refresh_token_of_a_logged_out_session_is_invalid_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser, auth: AuthActions, rp: oidc.Client
) -> None:
    body = login_tokens(http, rp)
    auth.logout()
    before = state_of(app)

    response = refresh(http, rp, body["refresh_token"])

    assert_token_error(response, "invalid_grant")
    assert state_of(app)[0] == before[0]


def test_refresh_token_of_a_revoked_session_is_invalid_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    from idp.sessions import service as sessions

    body = login_tokens(http, rp)
    sid = oidc.decode(http, body["id_token"], audience=rp.client_id)["sid"]
    with app.app_context():
        login = sessions.get_login_by_sid(sid)
        assert login is not None
        sessions.revoke_login(login, "admin")
    before = state_of(app)

    response = refresh(http, rp, body["refresh_token"])

    assert_token_error(response, "invalid_grant")
    assert state_of(app)[0] == before[0]


@pytest.mark.parametrize("hours", [9, 25], ids=["idle", "absolute"])
def test_refresh_token_of_an_expired_session_is_invalid_grant(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    clock: Clock,
    hours: int,
) -> None:
    body = login_tokens(http, rp)
    clock.advance(hours=hours)
    before = state_of(app)

    response = refresh(http, rp, body["refresh_token"])

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before


def test_refresh_keeps_working_while_the_session_lives(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    body = login_tokens(http, rp)
    clock.advance(hours=7)

    assert refreshed(http, rp, body["refresh_token"])["refresh_token"]


def test_refresh_with_a_narrower_scope(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    first = login_tokens(http, rp)

    narrow = refreshed(http, rp, first["refresh_token"], scope="openid")

    assert narrow["scope"] == "openid"
    access = oidc.decode(http, narrow["access_token"], audience=rp.client_id)
    assert access["scope"] == "openid"
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {narrow['access_token']}"})
    assert "email" not in info.get_json()
    # RFC 6749 §6: the new refresh token keeps the original scope, so the full scope is
    # still available on the next refresh.
    full = refreshed(http, rp, narrow["refresh_token"])
    assert full["scope"] == OFFLINE


@pytest.mark.parametrize(
    "scope",
    ["openid email profile offline_access", "openid admin", "groups"],
    ids=["one-more", "admin", "other"],
)
def test_refresh_with_a_wider_scope_is_invalid_scope(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, scope: str
) -> None:
    first = login_tokens(http, rp)
    before = state_of(app)

    response = refresh(http, rp, first["refresh_token"], scope=scope)

    assert_token_error(response, "invalid_scope")
    assert state_of(app) == before
    # The refused request spent nothing: the token still refreshes.
    assert refreshed(http, rp, first["refresh_token"])["scope"] == OFFLINE


def test_refresh_token_of_another_client_is_invalid_grant(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    other = oidc.register(app, "Wiki")
    first = login_tokens(http, rp)
    second = refreshed(http, rp, first["refresh_token"])
    before = state_of(app)

    # Even a rotated-out token: another client must not be able to revoke the family.
    for token in (first["refresh_token"], second["refresh_token"]):
        assert_token_error(refresh(http, other, token), "invalid_grant")

    assert state_of(app) == before
    assert reuse_events(app) == []


@pytest.mark.parametrize(
    "form",
    [{}, {"refresh_token": ""}, {"refresh_token": "not-a-token"}],
    ids=["missing", "empty", "unknown"],
)
def test_bad_refresh_token(
    app: Flask, http: FlaskClient, rp: oidc.Client, form: dict[str, str]
) -> None:
    before = state_of(app)

    response = http.post("/token", data={"grant_type": "refresh_token", **form}, auth=rp.basic_auth)

    assert_token_error(
        response, "invalid_grant" if form.get("refresh_token") else "invalid_request"
    )
    assert state_of(app) == before


def test_access_token_is_no_refresh_token(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    first = login_tokens(http, rp)
    before = state_of(app)

    assert_token_error(refresh(http, rp, first["access_token"]), "invalid_grant")

    assert state_of(app) == before


def test_public_client_refreshes_without_a_secret(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    wiki = oidc.register(app, "Wiki", token_endpoint_auth_method="none")
    first = login_tokens(http, wiki)

    second = refreshed(http, wiki, first["refresh_token"])

    assert second["refresh_token"] != first["refresh_token"]


def test_refreshed_id_token_keeps_sid_and_auth_time_without_nonce(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client, clock: Clock
) -> None:
    first = login_tokens(http, rp, nonce="nonce-456")
    original = oidc.decode(http, first["id_token"], audience=rp.client_id)
    assert original["nonce"] == "nonce-456"
    clock.advance(seconds=30)

    second = refreshed(http, rp, first["refresh_token"])

    id_token = oidc.decode(http, second["id_token"], audience=rp.client_id, leeway=60)
    for claim in ("iss", "sub", "sid", "auth_time", "azp", "acr", "amr"):
        assert id_token[claim] == original[claim], claim
    assert "nonce" not in id_token
    assert id_token["iat"] == original["iat"] + 30
    digest = hashlib.sha256(second["access_token"].encode()).digest()
    at_hash = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert id_token["at_hash"] == at_hash


def test_refresh_without_openid_gives_no_id_token(
    app: Flask, http: FlaskClient, logged_in: TestUser, rp: oidc.Client
) -> None:
    first = login_tokens(http, rp)

    narrow = refreshed(http, rp, first["refresh_token"], scope="email")

    assert "id_token" not in narrow
    assert narrow["scope"] == "email"


def test_concurrent_refreshes_issue_one_pair(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    rp: oidc.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two refreshes racing: the second read the token before the first rotated it.
    from idp.oidc import storage

    first = login_tokens(http, rp)
    refreshed(http, rp, first["refresh_token"])
    real_lookup = storage.get_token_by_refresh_token

    def stale_lookup(refresh_token: str) -> Any:
        row = real_lookup(refresh_token)
        assert row is not None and row.rotated_at is not None
        db.get_session().expunge(row)
        row.rotated_at = None  # what the racing request saw
        return row

    monkeypatch.setattr(storage, "get_token_by_refresh_token", stale_lookup)
    before = state_of(app)

    response = refresh(http, rp, first["refresh_token"])

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before
