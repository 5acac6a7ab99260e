"""Authorization codes are single-use; a replay revokes what the code produced (RFC 6749 §4.1.2)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.oidc.test_token import assert_token_error
from tests.oidc.test_token import introspect
from tests.oidc.test_token import state_of


def redeem(http: FlaskClient, client: oidc.Client, **params: str) -> tuple[str, str, Any]:
    """Return (code, verifier, token response) of one authorize + exchange."""
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http, client, code_challenge=challenge, code_challenge_method="S256", **params
    )
    return code, verifier, oidc.exchange(http, client, code, code_verifier=verifier)


def refresh(http: FlaskClient, client: oidc.Client, refresh_token: str) -> Any:
    return http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=client.basic_auth,
    )


def replay_events(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        return list(
            db.get_session().scalars(
                select(AuditEvent).where(AuditEvent.event == "authorization_code_replayed")
            )
        )


def test_code_gives_tokens_once(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp)
    assert first.status_code == 200, first.data
    assert "refresh_token" not in first.get_json()  # no offline_access asked
    assert state_of(app) == (1, 0, 1)

    second = oidc.exchange(http, rp, code, code_verifier=verifier)

    assert_token_error(second, "invalid_grant")
    tokens, _, used = state_of(app)
    assert (tokens, used) == (1, 1)  # no new issuance


def test_replay_revokes_the_access_token(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp)
    access_token = first.get_json()["access_token"]
    assert introspect(http, rp, access_token)["active"] is True

    assert_token_error(oidc.exchange(http, rp, code, code_verifier=verifier), "invalid_grant")

    assert introspect(http, rp, access_token) == {"active": False}
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert info.status_code == 401


def test_replay_revokes_the_refresh_family(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp, scope="openid offline_access")
    tokens = first.get_json()
    refreshed = refresh(http, rp, tokens["refresh_token"]).get_json()
    assert "refresh_token" in refreshed
    assert introspect(http, rp, refreshed["access_token"])["active"] is True

    replay = oidc.exchange(http, rp, code, code_verifier=verifier)

    assert_token_error(replay, "invalid_grant")
    for access_token in (tokens["access_token"], refreshed["access_token"]):
        assert introspect(http, rp, access_token) == {"active": False}
    # Even the newest refresh token, never used, is dead.
    assert_token_error(refresh(http, rp, refreshed["refresh_token"]), "invalid_grant")
    assert state_of(app) == (2, 2, 1)


def test_replay_is_audited_without_the_code(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp)
    sid = oidc.decode(http, first.get_json()["id_token"], audience=rp.client_id)["sid"]
    assert replay_events(app) == []

    oidc.exchange(http, rp, code, code_verifier=verifier)

    (event,) = replay_events(app)
    assert (event.rp, event.user_id, event.sid) == (rp.client_id, logged_in.id, sid)
    assert event.details["tokens_revoked"] == 1
    assert code not in str(event.details)


def test_replay_without_the_verifier_still_revokes(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # An attacker holding a leaked, already-redeemed code has no verifier: still a replay.
    rp = oidc.register(app)
    code, _, first = redeem(http, rp)

    assert_token_error(oidc.exchange(http, rp, code), "invalid_grant")

    assert introspect(http, rp, first.get_json()["access_token"]) == {"active": False}
    assert len(replay_events(app)) == 1


def test_replay_leaves_other_codes_alone(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp, nonce="n-1")
    _, _, second = redeem(http, rp, nonce="n-2")

    oidc.exchange(http, rp, code, code_verifier=verifier)

    assert introspect(http, rp, first.get_json()["access_token"]) == {"active": False}
    assert introspect(http, rp, second.get_json()["access_token"])["active"] is True


def test_used_code_presented_by_another_client_changes_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    rp = oidc.register(app)
    other = oidc.register(app, "Wiki")
    code, verifier, first = redeem(http, rp)
    before = state_of(app)

    # Codes are bound to their client: another client cannot use one, nor make it revoke.
    response = oidc.exchange(http, other, code, code_verifier=verifier)

    assert_token_error(response, "invalid_grant")
    assert state_of(app) == before
    assert introspect(http, rp, first.get_json()["access_token"])["active"] is True
    assert replay_events(app) == []


def test_concurrent_redemption_is_a_replay(
    app: Flask, http: FlaskClient, logged_in: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two redemptions racing: the second read the code before the first spent it.
    from idp.oidc import storage

    rp = oidc.register(app)
    code, verifier, first = redeem(http, rp)
    real_get_code = storage.get_code

    def stale_get_code(code: str, client_id: str) -> Any:
        row = real_get_code(code, client_id)
        assert row is not None and row.used_at is not None
        db.get_session().expunge(row)
        row.used_at = None  # what the racing request saw
        return row

    monkeypatch.setattr(storage, "get_code", stale_get_code)

    second = oidc.exchange(http, rp, code, code_verifier=verifier)

    assert_token_error(second, "invalid_grant")
    assert state_of(app) == (1, 1, 1)  # no second issuance; the first one revoked
    assert introspect(http, rp, first.get_json()["access_token"]) == {"active": False}
    assert len(replay_events(app)) == 1
