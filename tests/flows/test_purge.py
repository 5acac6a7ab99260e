"""The periodic sweep purges what stopped mattering, in bounded batches, and audits counts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import OAuthToken
from idp.models.oidc import ReplayEntry
from idp.replay import remember_once
from idp.sessions.logout import run_maintenance
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc

OFFLINE = "openid offline_access"
TABLES = (LoginSession, SessionParticipant, AuthorizationCode, OAuthToken, ReplayEntry)


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        session = db.get_session()
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (*TABLES, LogoutDelivery)
        }


def purged(app: Flask) -> dict[str, int]:
    """Sum the counts of every ``expired_rows_purged`` audit event so far."""
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == "expired_rows_purged")
        total: dict[str, int] = {}
        for event in db.get_session().scalars(query):
            for name, value in event.details.items():
                total[name] = total.get(name, 0) + value
        return total


def sweep(app: Flask) -> None:
    with app.app_context():
        run_maintenance()


def an_old_session(app: Flask, http: FlaskClient, client: oidc.Client, clock: Clock) -> None:
    """Codes, a rotated refresh family, a replay entry and a delivered back-channel logout."""
    tokens = oidc.issue_tokens(http, client, OFFLINE)
    rotated = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.basic_auth,
    )
    assert rotated.status_code == 200, rotated.data
    with app.app_context():
        now = clock()
        assert remember_once("jwt-assertion:old", now + timedelta(minutes=1))
        login_id = db.get_session().scalars(select(LoginSession.id)).one()
        db.get_session().add(
            LogoutDelivery(
                protocol="oidc",
                rp=client.client_id,
                login_session_id=login_id,
                uri="https://rp.example/backchannel",
                attempts=1,
                created_at=now,
                give_up_at=now + timedelta(hours=1),
                delivered_at=now,
            )
        )
        db.get_session().commit()


def test_the_sweep_purges_expired_rows_and_keeps_live_ones(
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    logged_in: TestUser,
    clock: Clock,
) -> None:
    client = oidc.register(app)
    an_old_session(app, http, client, clock)
    assert counts(app) == {
        "login_session": 1,
        "session_participant": 1,
        "oauth_authorization_code": 1,
        "oauth_token": 2,
        "replay_entry": 1,
        "logout_delivery": 1,
    }
    clock.advance(days=2, seconds=1)  # the session's 24 hours, then a day more

    sweep(app)

    # The session ended just now (its apps hear of it) and stays a day; the rest goes.
    assert counts(app) == {
        "login_session": 1,
        "session_participant": 1,
        "oauth_authorization_code": 0,
        "oauth_token": 0,
        "replay_entry": 0,
        "logout_delivery": 0,
    }
    assert purged(app) == {
        "authorization_codes": 1,
        "tokens": 2,
        "logout_deliveries": 1,
        "replay_entries": 1,
    }
    # A new day's login and tokens are kept by every later sweep.
    auth.login(logged_in.email, logged_in.password)
    live = oidc.issue_tokens(http, client, OFFLINE)
    clock.advance(days=1, seconds=1)

    sweep(app)

    assert purged(app)["login_sessions"] == 1
    remaining = counts(app)
    assert remaining["login_session"] == 1  # the new one, ended by expiry just now
    assert remaining["oauth_token"] == 1
    assert remaining["oauth_authorization_code"] == 1
    with app.app_context():
        row = db.get_session().scalars(select(OAuthToken)).one()
        assert row.refresh_token_hash is not None and live["refresh_token"]


def test_each_sweep_deletes_a_bounded_batch(app: Flask, clock: Clock) -> None:
    expired = clock() - timedelta(seconds=1)
    total = db.PURGE_BATCH * 2 + 500
    with app.app_context():
        rows: list[dict[str, Any]] = [
            {"key": f"old-{index}", "expires_at": expired} for index in range(total)
        ]
        db.get_session().execute(insert(ReplayEntry), rows)
        db.get_session().commit()

    sweep(app)
    assert counts(app)["replay_entry"] == total - db.PURGE_BATCH
    sweep(app)
    sweep(app)

    assert counts(app)["replay_entry"] == 0
    assert purged(app) == {"replay_entries": total}
