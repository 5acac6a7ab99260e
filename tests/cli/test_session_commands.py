"""``idp session list|revoke``: the listing matches the LoginSession rows; revoking logs out."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from idp.models import LoginSession
from tests.conftest import AuthActions
from tests.conftest import make_user
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run

if TYPE_CHECKING:
    from tests.conftest import TestUser

FIELDS = {"id", "user", "created", "last_seen", "expires", "ip", "user_agent", "participants"}


def logins(app: Flask) -> list[LoginSession]:
    with app.app_context():
        return list(db.get_session().scalars(select(LoginSession).order_by(LoginSession.id)))


def audit_count(app: Flask) -> int:
    with app.app_context():
        return db.get_session().scalar(select(func.count()).select_from(AuditEvent)) or 0


def log_in_new_browser(app: Flask, email: str, password: str) -> FlaskClient:
    browser = app.test_client()
    assert AuthActions(browser).login(email, password).status_code == 302
    return browser


def test_list_json_matches_the_login_session(app: Flask, logged_in: TestUser) -> None:
    (login,) = logins(app)
    result = run(app, "session", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == FIELDS
    assert row["id"] == login.sid
    assert row["user"] == logged_in.email
    assert row["created"] == login.created_at.isoformat()
    assert row["last_seen"] == login.last_seen_at.isoformat()
    assert (
        row["expires"]
        == min(
            login.expires_at,
            login.last_seen_at + app.extensions["idp.settings"].session_idle_timeout,
        ).isoformat()
    )
    assert row["ip"] == login.ip == "127.0.0.1"
    assert row["user_agent"] == login.user_agent
    assert row["participants"] == []


def test_list_text(app: Flask, logged_in: TestUser) -> None:
    (login,) = logins(app)
    result = run(app, "session", "list")
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{login.sid}\t{logged_in.email}\t127.0.0.1\t")


def test_list_when_empty(app: Flask) -> None:
    assert run(app, "session", "list").stdout.strip() == "No live sessions."
    assert json.loads(run(app, "session", "list", "--json").stdout) == []


def test_list_filters_by_user(app: Flask, user: TestUser) -> None:
    bob = make_user(app, "bob@example.com", "bob password here", name="Bob Builder")
    log_in_new_browser(app, user.email, user.password)
    log_in_new_browser(app, bob.email, bob.password)
    log_in_new_browser(app, bob.email, bob.password)

    everyone = json.loads(run(app, "session", "list", "--json").stdout)
    assert sorted(row["user"] for row in everyone) == [user.email, bob.email, bob.email]

    result = run(app, "session", "list", "--user", "BOB@example.com", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["user"] for row in rows] == [bob.email, bob.email]
    bob_sids = {login.sid for login in logins(app) if login.user_id == bob.id}
    assert {row["id"] for row in rows} == bob_sids


def test_list_unknown_user_is_an_error(app: Flask) -> None:
    assert_one_error_line(run(app, "session", "list", "--user", "nobody@example.com"))


def test_revoke_logs_the_browser_out_and_is_audited(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    (login,) = logins(app)
    assert http.get("/").status_code == 200

    result = run(app, "session", "revoke", login.sid)
    assert result.exit_code == 0, result.output
    assert login.sid in result.stdout

    response = http.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    (stored,) = logins(app)
    assert stored.revoked_at is not None
    with app.app_context():
        revoked = (
            db.get_session()
            .scalars(select(AuditEvent).where(AuditEvent.event == "session_revoked"))
            .all()
        )
    assert [(event.sid, event.user_id) for event in revoked] == [(login.sid, logged_in.id)]
    assert json.loads(run(app, "session", "list", "--json").stdout) == []


def test_revoke_twice_says_already_ended(app: Flask, logged_in: TestUser) -> None:
    (login,) = logins(app)
    assert run(app, "session", "revoke", login.sid).exit_code == 0
    before = audit_count(app)
    again = run(app, "session", "revoke", login.sid)
    assert again.exit_code == 0
    assert "already ended" in again.stdout
    assert audit_count(app) == before


def test_revoke_unknown_id_changes_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    before = audit_count(app)
    result = run(app, "session", "revoke", "no-such-session")
    assert_one_error_line(result)
    assert "no-such-session" in result.stderr
    assert http.get("/").status_code == 200
    assert all(login.revoked_at is None for login in logins(app))
    assert audit_count(app) == before


def test_revoke_by_user_ends_all_their_sessions(app: Flask, user: TestUser) -> None:
    bob = make_user(app, "bob@example.com", "bob password here", name="Bob Builder")
    alice_browsers = [log_in_new_browser(app, user.email, user.password) for _ in range(2)]
    bob_browser = log_in_new_browser(app, bob.email, bob.password)

    result = run(app, "session", "revoke", "--user", user.email)
    assert result.exit_code == 0, result.output
    assert "Ended 2 session(s)" in result.stdout

    for browser in alice_browsers:
        assert browser.get("/").status_code == 302
    assert bob_browser.get("/").status_code == 200
    with app.app_context():
        revoked = (
            db.get_session()
            .scalars(select(AuditEvent.sid).where(AuditEvent.event == "session_revoked"))
            .all()
        )
    alice_sids = {login.sid for login in logins(app) if login.user_id == user.id}
    assert set(revoked) == alice_sids and len(revoked) == 2


def test_revoke_by_unknown_user_changes_nothing(app: Flask, logged_in: TestUser) -> None:
    before = audit_count(app)
    assert_one_error_line(run(app, "session", "revoke", "--user", "nobody@example.com"))
    assert all(login.revoked_at is None for login in logins(app))
    assert audit_count(app) == before


def test_revoke_needs_exactly_one_target(app: Flask, logged_in: TestUser) -> None:
    (login,) = logins(app)
    before = audit_count(app)
    for args in ((), (login.sid, "--user", logged_in.email)):
        result = run(app, "session", "revoke", *args)
        assert result.exit_code == 2, result.output
        assert "Usage:" in result.stderr
        assert "Error:" in result.stderr
        assert "Traceback" not in result.output
    assert all(login.revoked_at is None for login in logins(app))
    assert audit_count(app) == before


def test_revoke_a_sid_that_looks_like_an_option(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # URL-safe base64 sids start with "-" one time in 64; operators paste them as they are.
    with app.app_context():
        login = db.get_session().scalars(select(LoginSession)).one()
        login.sid = "-F-looks-like-an-option"
        db.get_session().commit()

    result = run(app, "session", "revoke", "-F-looks-like-an-option")
    assert result.exit_code == 0, result.output
    assert http.get("/").status_code == 302

    unknown = run(app, "session", "revoke", "--no-such-sid")
    assert_one_error_line(unknown)
