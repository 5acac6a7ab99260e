"""Session participation, and every way a session ends reaching every participant the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.errors import InvalidInputError
from idp.models.login import SessionParticipant
from idp.models.user import User
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.forms import csrf_token

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


def participant_rows(app: Flask) -> list[SessionParticipant]:
    with app.app_context():
        query = select(SessionParticipant).order_by(SessionParticipant.id)
        return list(db.get_session().scalars(query))


def session_list(app: Flask) -> list[dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["session", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def in_new_browser(app: Flask, user: TestUser) -> FlaskClient:
    browser = app.test_client()
    assert AuthActions(browser).login(user.email, user.password).status_code == 302
    return browser


def change_password(app: Flask, user: TestUser, password: str, keep_sid: str | None) -> None:
    from idp.users.service import set_password

    with app.app_context():
        row = db.get_session().get(User, user.id)
        assert row is not None
        keep = rx.login_row(app, keep_sid) if keep_sid else None
        set_password(row, password, keep_login=db.get_session().merge(keep) if keep else None)


# Participation ------------------------------------------------------------------------------


def test_a_session_with_no_tokens_has_no_participants(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    (row,) = session_list(app)
    assert row["participants"] == []


def test_a_code_flow_joins_the_client_to_the_session(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    tokens = rx.sign_in_to(http, client)

    (participant,) = participant_rows(app)
    assert participant.protocol == "oidc"
    assert participant.rp == client.client_id
    assert participant.joined_at == clock.now
    assert participant.logged_out_at is None
    (row,) = session_list(app)
    assert row["id"] == tokens["claims"]["sid"]
    assert row["participants"] == [
        {
            "protocol": "oidc",
            "rp": client.client_id,
            "joined": clock.now.isoformat(),
            # No back-channel logout URI: only a browser can tell it of the session's end.
            "reachable_without_browser": False,
        }
    ]


def test_every_client_joins_once_in_the_order_it_joined(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    notes = oidc.register(app, "Notes")
    wiki = oidc.register(app, "Wiki")
    notes_tokens = rx.sign_in_to(http, notes)
    joined_notes = clock.now
    clock.advance(seconds=30)
    rx.sign_in_to(http, wiki)
    joined_wiki = clock.now
    clock.advance(seconds=30)
    rx.sign_in_to(http, notes)  # a second code flow
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": notes_tokens["refresh_token"]},
        auth=notes.basic_auth,
    )
    assert refreshed.status_code == 200, refreshed.data

    (row,) = session_list(app)
    assert [(item["rp"], item["joined"]) for item in row["participants"]] == [
        (notes.client_id, joined_notes.isoformat()),
        (wiki.client_id, joined_wiki.isoformat()),
    ]
    assert len(participant_rows(app)) == 2


def test_a_code_that_was_never_exchanged_does_not_join(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    oidc.get_code(http, client)
    assert participant_rows(app) == []
    (row,) = session_list(app)
    assert row["participants"] == []


def test_participants_are_per_session(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    client = oidc.register(app)
    rx.sign_in_to(http, client)
    in_new_browser(app, logged_in)
    rows = session_list(app)
    assert sorted(len(row["participants"]) for row in rows) == [0, 1]


# Every way a session ends ---------------------------------------------------------------------


@dataclass
class Ending:
    app: Flask
    http: FlaskClient
    user: TestUser
    clock: Clock
    client: oidc.Client
    tokens: dict[str, Any]

    @property
    def sid(self) -> str:
        sid: str = self.tokens["claims"]["sid"]
        return sid

    def cli(self, *args: str) -> None:
        result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output


def by_logout_form(ending: Ending) -> None:
    assert AuthActions(ending.http).logout().status_code == 200


def by_end_session(ending: Ending) -> None:
    response = ending.http.get(
        "/end_session", query_string={"id_token_hint": ending.tokens["id_token"]}
    )
    assert response.status_code == 200


def by_session_revoke(ending: Ending) -> None:
    ending.cli("session", "revoke", ending.sid)


def by_session_revoke_user(ending: Ending) -> None:
    ending.cli("session", "revoke", "--user", ending.user.email)


def by_user_disable(ending: Ending) -> None:
    ending.cli("user", "disable", ending.user.email)


def by_idle_expiry(ending: Ending) -> None:
    from idp.sessions.logout import run_maintenance

    ending.clock.advance(hours=7, minutes=59)
    with ending.app.app_context():
        run_maintenance()
    assert rx.login_row(ending.app, ending.sid).revoked_at is None  # not idle yet
    ending.clock.advance(minutes=1)
    with ending.app.app_context():
        run_maintenance()


def by_absolute_expiry(ending: Ending) -> None:
    from idp.sessions.service import expire_stale_logins

    for _ in range(3):  # browse every 7 hours: never idle, but 24 hours old in the end
        ending.clock.advance(hours=7)
        assert ending.http.get("/").status_code == 200
    ending.clock.advance(hours=3)
    with ending.app.app_context():
        assert [login.sid for login in expire_stale_logins()] == [ending.sid]


def by_password_change(ending: Ending) -> None:
    change_password(ending.app, ending.user, NEW_PASSWORD, keep_sid=None)


def by_user_switch(ending: Ending) -> None:
    bob = make_user(ending.app, "bob@example.com", "another long passphrase", name="Bob Builder")
    response = AuthActions(ending.http).login(bob.email, bob.password)
    assert response.status_code == 302


ENDINGS: dict[str, tuple[Callable[[Ending], None], str]] = {
    "logout_form": (by_logout_form, "logout"),
    "end_session": (by_end_session, "rp_logout"),
    "session_revoke": (by_session_revoke, "admin_revoked"),
    "session_revoke_user": (by_session_revoke_user, "admin_revoked"),
    "user_disable": (by_user_disable, "user_disabled"),
    "idle_expiry": (by_idle_expiry, "expired"),
    "absolute_expiry": (by_absolute_expiry, "expired"),
    "password_change": (by_password_change, "password_changed"),
    "user_switch": (by_user_switch, "switched_user"),
}


@pytest.mark.parametrize("way", list(ENDINGS))
def test_every_way_a_session_ends_reaches_its_participants(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
    clock: Clock,
    way: str,
) -> None:
    end, reason = ENDINGS[way]
    notes = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint("/notes"))
    wiki = oidc.register(app, "Wiki", backchannel_logout_uri=receiver.endpoint("/wiki"))
    notes_tokens = rx.sign_in_to(http, notes)
    wiki_tokens = rx.sign_in_to(http, wiki)
    assert receiver.received == []

    end(Ending(app, http, logged_in, clock, notes, notes_tokens))

    by_path = {post.path: post.logout_token for post in receiver.received}
    assert len(receiver.received) == 2 and set(by_path) == {"/notes", "/wiki"}
    for client, tokens, path in ((notes, notes_tokens, "/notes"), (wiki, wiki_tokens, "/wiki")):
        claims = rx.verify_logout_token(http, by_path[path], client, now=clock.now)
        assert claims["sid"] == tokens["claims"]["sid"]
        assert claims["sub"] == tokens["claims"]["sub"]
        rx.assert_tokens_dead(http, client, tokens)
    login = rx.login_row(app, notes_tokens["claims"]["sid"])
    assert login.revoked_at == clock.now
    assert login.revoked_reason == reason
    assert all(row.logged_out_at == clock.now for row in participant_rows(app))
    assert all(row.delivered_at == clock.now for row in rx.deliveries(app))
    (revoked,) = [
        event for event in rx.audit_events(app, "session_revoked") if event.sid == login.sid
    ]
    assert revoked.details["reason"] == reason
    assert len(rx.audit_events(app, "backchannel_logout_delivered")) == 2
    assert login.sid not in {row["id"] for row in session_list(app)}


# Password change keeps the session it was changed from ------------------------------------------


def test_password_change_ends_only_the_other_sessions(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    stolen = in_new_browser(app, logged_in)  # someone who learnt the old password
    stolen_tokens = rx.sign_in_to(stolen, client)
    own_tokens = rx.sign_in_to(http, client)

    change_password(app, logged_in, NEW_PASSWORD, keep_sid=own_tokens["claims"]["sid"])

    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, client, now=clock.now)
    assert claims["sid"] == stolen_tokens["claims"]["sid"]
    rx.assert_tokens_dead(stolen, client, stolen_tokens)
    rx.assert_tokens_alive(http, client, own_tokens)
    assert stolen.get("/").status_code == 302
    assert http.get("/").status_code == 200
    assert rx.login_row(app, claims["sid"]).revoked_reason == "password_changed"
    assert len(rx.audit_events(app, "user_password_changed")) == 1
    assert AuthActions(app.test_client()).login(logged_in.email, NEW_PASSWORD).status_code == 302


def test_an_unusable_new_password_ends_nothing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)

    with pytest.raises(InvalidInputError):
        change_password(app, logged_in, "", keep_sid=None)

    assert receiver.received == []
    assert rx.deliveries(app) == []
    rx.assert_tokens_alive(http, client, tokens)
    assert rx.audit_events(app, "user_password_changed") == []
    assert (
        AuthActions(app.test_client()).login(logged_in.email, logged_in.password).status_code == 302
    )


def test_logging_out_twice_sends_one_token(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    by_session_revoke(Ending(app, http, logged_in, Clock(), client, tokens))
    result = app.test_cli_runner().invoke(args=["session", "revoke", tokens["claims"]["sid"]])
    assert result.exit_code == 0
    assert "already ended" in result.output
    page = http.get("/logout")
    assert page.status_code == 200
    assert 'name="csrf_token"' not in page.get_data(as_text=True)  # nothing left to sign out
    assert len(receiver.received) == 1
    assert len(rx.deliveries(app)) == 1


def test_the_logout_form_needs_its_csrf_token(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    page = http.get("/logout")
    assert csrf_token(page.data)
    assert http.post("/logout", data={}).status_code == 400
    assert http.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert receiver.received == []
    assert rx.deliveries(app) == []
    rx.assert_tokens_alive(http, client, tokens)
    assert http.get("/").status_code == 200


def test_two_processes_ending_one_session_send_one_logout(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
) -> None:
    """Two workers sweep (or an admin revokes while the user logs out): one logout, not two."""
    from idp.sessions.service import revoke_login

    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    sid = tokens["claims"]["sid"]
    with app.app_context():
        # This worker read the session while it was live...
        stale = db.get_session().merge(rx.login_row(app, sid))
        assert stale.revoked_at is None
        # ...then another worker ended it.
        with app.app_context():
            assert revoke_login(db.get_session().merge(rx.login_row(app, sid)), "admin_revoked")
        assert revoke_login(stale, "expired") is False
    assert len(receiver.received) == 1
    assert len(rx.deliveries(app)) == 1
    assert len(rx.audit_events(app, "session_revoked")) == 1
    assert rx.login_row(app, sid).revoked_reason == "admin_revoked"
