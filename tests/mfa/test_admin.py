"""Admins reset second factors: ``idp user totp enroll|reset``, the admin API, the console.

The API's ``DELETE /users/{id}/factors`` and the console's button are audited.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from idp.models import RecoveryCode
from idp.models import TotpFactor
from tests.account.conftest import LAPTOP
from tests.account.conftest import sign_in
from tests.admin.conftest import API
from tests.admin.conftest import Bearer
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import mfa
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count
from tests.helpers.saml import audit_events


def test_cli_enroll_prints_the_secret_once_and_the_user_needs_codes(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser, clock: Clock
) -> None:
    result = run(app, "user", "totp", "enroll", user.email, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert set(printed) == {"secret", "uri"}
    uri = urlsplit(printed["uri"])
    assert uri.scheme == "otpauth" and parse_qs(uri.query)["secret"] == [printed["secret"]]
    assert auth.login(user.email, user.password).status_code == 303
    assert mfa.submit_otp(http, pyotp.TOTP(printed["secret"]).at(clock.now)).status_code == 303
    # Once: a second enroll is refused, not a second secret.
    again = run(app, "user", "totp", "enroll", user.email)
    assert_one_error_line(again, "already set up")
    assert_one_error_line(run(app, "user", "totp", "enroll", "nobody@example.com"))


def test_cli_reset_removes_the_factors(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    mfa.enrol(app, user.email)
    result = run(app, "user", "totp", "reset", user.email)
    assert result.exit_code == 0, result.output
    assert "Removed 1 second factor(s)" in result.stdout
    assert count(app, TotpFactor) == 0
    assert auth.login(user.email, user.password).status_code == 302  # the password alone now
    assert [row.user_id for row in audit_events(app, "mfa_reset")] == [user.id]


def test_the_admin_api_resets_a_users_factors(
    app: Flask, http: FlaskClient, robot_token: Bearer, user: TestUser, clock: Clock
) -> None:
    mfa.enrol(app, user.email)
    browser = app.test_client()
    AuthActions(browser).login(user.email, user.password)
    mfa.submit_otp(browser, "aaaa-bbbb-cccc-dddd")  # no recovery codes from the CLI: refused
    assert http.delete(f"{API}/users/99999/factors", headers=robot_token.headers).status_code == 404
    assert http.delete(f"{API}/users/{user.id}/factors").status_code == 401
    assert count(app, TotpFactor) == 1
    response = http.delete(f"{API}/users/{user.id}/factors", headers=robot_token.headers)
    assert response.status_code == 204
    assert count(app, TotpFactor) == count(app, RecoveryCode) == 0
    [event] = audit_events(app, "mfa_reset")
    assert event.user_id == user.id and event.details["removed"] == 1
    operations = http.get(f"{API}/openapi.json").get_json()["paths"][f"{API}/users/{{id}}/factors"]
    assert set(operations) == {"delete"}


def test_the_console_button_resets_a_users_factors(
    app: Flask, admin: TestUser, user: TestUser
) -> None:
    mfa.enrol(app, user.email)
    console = sign_in(app, admin, LAPTOP)
    page = console.get("/admin/users")
    assert 'value="reset_factors"' in page.get_data(as_text=True)
    response = console.post(
        "/admin/users",
        data={"csrf_token": csrf_token(page.data), "action": "reset_factors", "user_id": user.id},
    )
    assert response.status_code == 303
    assert count(app, TotpFactor) == 0
    [event] = audit_events(app, "mfa_reset")
    assert event.details["actor_user_id"] == admin.id
