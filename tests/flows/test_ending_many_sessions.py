"""Ending many sessions at once: one statement per table, and each session announced once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy import update

from idp import db
from idp.models.login import LoginSession
from idp.models.user import User
from idp.sessions import service as sessions
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.rows import count_statements


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


def sign_in_browsers(
    app: Flask, user: TestUser, client: oidc.Client, count: int
) -> list[dict[str, Any]]:
    issued = []
    for _ in range(count):
        browser = app.test_client()
        assert AuthActions(browser).login(user.email, user.password).status_code == 302
        issued.append(rx.sign_in_to(browser, client))
    return issued


def revoke_user(app: Flask, user: TestUser) -> list[str]:
    with count_statements(app) as statements:
        result = app.test_cli_runner().invoke(args=["session", "revoke", "--user", user.email])
    assert result.exit_code == 0, result.output
    return statements


def test_ending_many_sessions_costs_what_ending_one_costs(
    app: Flask, http: FlaskClient, user: TestUser, receiver: rx.Receiver, clock: Clock
) -> None:
    notes = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint("/notes"))
    wiki = oidc.register(app, "Wiki", backchannel_logout_uri=receiver.endpoint("/wiki"))
    (one,) = sign_in_browsers(app, user, notes, 1)
    for_one = revoke_user(app, user)
    assert len(receiver.tokens) == 1

    many = sign_in_browsers(app, user, notes, 4) + sign_in_browsers(app, user, wiki, 1)
    for_many = revoke_user(app, user)

    # Per table, not per session: the same statements whatever the number of sessions.
    assert len(for_many) == len(for_one), "\n".join(for_many)
    by_path = {"/notes": notes, "/wiki": wiki}
    announced = [
        rx.verify_logout_token(http, post.logout_token, by_path[post.path], now=clock.now)["sid"]
        for post in receiver.received[1:]
    ]
    assert sorted(announced) == sorted(tokens["claims"]["sid"] for tokens in many)
    for tokens, client in [(one, notes), *zip(many, [notes] * 4 + [wiki], strict=True)]:
        rx.assert_tokens_dead(http, client, tokens)
    revoked = rx.audit_events(app, "session_revoked")
    assert sorted(event.sid for event in revoked) == sorted(
        tokens["claims"]["sid"] for tokens in [one, *many]
    )
    assert all(event.details["reason"] == "admin_revoked" for event in revoked)
    assert all(row.delivered_at == clock.now for row in rx.deliveries(app))


def test_a_session_ended_meanwhile_is_not_announced_again(
    app: Flask, http: FlaskClient, user: TestUser, receiver: rx.Receiver, clock: Clock
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    first, second, third = sign_in_browsers(app, user, client, 3)
    with app.app_context():
        row = db.get_session().get(User, user.id)
        assert row is not None
        live = sessions.list_logins(row)
        # Another worker ends one of them between our read and our write.
        with db.get_database(app).engine.begin() as other:
            other.execute(
                update(LoginSession)
                .where(LoginSession.sid == second["claims"]["sid"])
                .values(revoked_at=clock.now, revoked_reason="expired")
            )
        ended = sessions.end_logins(live, "admin_revoked")
        assert sorted(login.sid for login in ended) == sorted(
            tokens["claims"]["sid"] for tokens in (first, third)
        )
        # The one we lost is read again: it shows the other worker's end, not ours.
        (lost,) = [login for login in live if login not in ended]
        assert lost.revoked_reason == "expired"
        rows = db.get_session().execute(select(LoginSession.sid, LoginSession.revoked_reason))
        reasons = {sid: reason for sid, reason in rows}
    assert reasons[second["claims"]["sid"]] == "expired"
    assert len(receiver.tokens) == 2
    announced = {
        rx.verify_logout_token(http, token, client, now=clock.now)["sid"]
        for token in receiver.tokens
    }
    assert announced == {first["claims"]["sid"], third["claims"]["sid"]}
    assert len(rx.audit_events(app, "session_revoked")) == 2
