"""``idp user add|list|disable`` through Flask's CLI runner: one-line errors, nothing changed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models import User
from tests.conftest import AuthActions
from tests.conftest import make_user
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run

if TYPE_CHECKING:
    from tests.conftest import TestUser

PASSWORD = "a long enough test password"


def user_count(app: Flask) -> int:
    with app.app_context():
        return db.get_session().scalar(select(func.count()).select_from(User)) or 0


def get_user(app: Flask, email: str) -> User | None:
    with app.app_context():
        return db.get_session().scalar(select(User).where(User.email == email))


def test_add_with_password_then_log_in(app: Flask, auth: AuthActions) -> None:
    result = run(
        app,
        "user",
        "add",
        "Carol@Example.com",
        "--name",
        "Carol Smith",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "carol@example.com" in result.stdout
    assert result.stderr == ""
    user = get_user(app, "carol@example.com")
    assert user is not None
    assert user.name == "Carol Smith"
    assert not user.is_admin
    assert not user.is_disabled
    assert user.password_hash and PASSWORD not in user.password_hash

    response = auth.login("carol@example.com", PASSWORD)
    assert response.status_code == 302
    assert auth.http.get("/").status_code == 200


def test_add_admin_as_json(app: Flask) -> None:
    result = run(
        app,
        "user",
        "add",
        "root@example.com",
        "--name",
        "Root",
        "--admin",
        "--json",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "email": "root@example.com",
        "name": "Root",
        "admin": True,
    }
    user = get_user(app, "root@example.com")
    assert user is not None and user.is_admin


def test_add_without_password_cannot_log_in(app: Flask, auth: AuthActions) -> None:
    result = run(app, "user", "add", "nopass@example.com", "--name", "No Pass")
    assert result.exit_code == 0, result.output
    user = get_user(app, "nopass@example.com")
    assert user is not None and user.password_hash is None
    assert auth.login("nopass@example.com", "any password at all").status_code == 401


def test_add_duplicate_email_is_refused(app: Flask, user: TestUser) -> None:
    for email in (user.email, user.email.upper()):
        result = run(
            app,
            "user",
            "add",
            email,
            "--name",
            "Impostor",
            "--password-stdin",
            input="another password\n",
        )
        assert_one_error_line(result)
        assert "already exists" in result.stderr
        assert user_count(app) == 1
        stored = get_user(app, user.email)
        assert stored is not None and stored.name == user.name


def test_add_malformed_email_is_refused(app: Flask) -> None:
    for email in ("not-an-email", "a@b@c", "@example.com", "alice@", ""):
        result = run(app, "user", "add", email, "--name", "X")
        assert_one_error_line(result)
        assert "e-mail" in result.stderr
    assert user_count(app) == 0


def test_add_empty_password_from_stdin_creates_nobody(app: Flask) -> None:
    for given in ("\n", "", "\r\n"):
        result = run(
            app,
            "user",
            "add",
            "dave@example.com",
            "--name",
            "Dave",
            "--password-stdin",
            input=given,
        )
        assert_one_error_line(result)
        assert "empty" in result.stderr
    assert user_count(app) == 0


def test_add_requires_a_name(app: Flask) -> None:
    result = run(app, "user", "add", "eve@example.com")
    assert result.exit_code == 2
    assert "--name" in result.stderr
    assert user_count(app) == 0


def test_list_as_text_and_json(app: Flask) -> None:
    make_user(app, "alice@example.com", PASSWORD, name="Alice Liddell")
    make_user(app, "admin@example.com", PASSWORD, name="Ada Admin", is_admin=True)
    run(app, "user", "disable", "alice@example.com")

    text = run(app, "user", "list")
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines() == [
        "alice@example.com\tAlice Liddell\tdisabled",
        "admin@example.com\tAda Admin\tadmin",
    ]

    listed = run(app, "user", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert isinstance(rows, list) and all(isinstance(row, dict) for row in rows)
    assert [(row["email"], row["name"], row["admin"], row["disabled"]) for row in rows] == [
        ("alice@example.com", "Alice Liddell", False, True),
        ("admin@example.com", "Ada Admin", True, False),
    ]
    assert all(set(row) == {"email", "name", "admin", "disabled", "created"} for row in rows)


def test_list_with_no_users(app: Flask) -> None:
    result = run(app, "user", "list", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_disable_ends_the_live_login(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    assert http.get("/").status_code == 200

    result = run(app, "user", "disable", logged_in.email.upper())
    assert result.exit_code == 0, result.output
    assert logged_in.email in result.stdout

    response = http.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    stored = get_user(app, logged_in.email)
    assert stored is not None and stored.is_disabled


def test_disable_unknown_email_changes_nothing(app: Flask, user: TestUser) -> None:
    result = run(app, "user", "disable", "nobody@example.com")
    assert_one_error_line(result)
    assert "nobody@example.com" in result.stderr
    stored = get_user(app, user.email)
    assert stored is not None and not stored.is_disabled
    assert user_count(app) == 1
