"""A passkey as the second step of a password login (/login/otp), and the admin's factor reset."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.authenticator import SoftAuthenticator
from tests.helpers.authenticator import enrol
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token


def answer_with_passkey(http: FlaskClient, authenticator: SoftAuthenticator) -> object:
    page = http.get("/login/otp")
    # A user whose only factor is a passkey is not asked for a code.
    assert page.status_code == 200 and b"Use your passkey" in page.data
    assert b'name="otp"' not in page.data
    token = csrf_token(page.data)
    started = http.post("/login/otp/passkey/options", data={"csrf_token": token})
    assert started.status_code == 200, started.data
    credential = json.dumps(authenticator.get(started.get_json()))
    return http.post("/login/otp/passkey", data={"csrf_token": token, "credential": credential})


def test_password_then_passkey_gives_pwd_hwk_mfa(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    authenticator = SoftAuthenticator()
    assert enrol(http, authenticator).status_code == 303
    auth = AuthActions(http)
    auth.logout()
    client = oidc.register(app)
    started = oidc.authorize(http, client)
    next_url = started.headers["Location"].split("next=", 1)[1]
    from urllib.parse import unquote

    response = auth.login(logged_in.email, logged_in.password, next_url=unquote(next_url))
    assert response.status_code == 303 and response.headers["Location"] == "/login/otp"
    done = answer_with_passkey(http, authenticator)
    assert done.status_code == 303 and done.headers["Location"].startswith("/authorize?")
    tokens = oidc.issue_tokens(http, client)
    claims = oidc.decode(http, tokens["id_token"], audience=client.client_id)
    assert claims["amr"] == ["pwd", "hwk", "mfa"]


def test_another_users_passkey_does_not_complete_the_step(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    assert enrol(http, SoftAuthenticator()).status_code == 303
    auth = AuthActions(http)
    auth.logout()
    assert auth.login(logged_in.email, logged_in.password).status_code == 303
    response = answer_with_passkey(http, SoftAuthenticator(user_handle=b"x"))
    assert response.status_code == 401
    assert http.get("/account/security").status_code == 302  # not signed in


def test_the_factor_reset_removes_passkeys(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    assert enrol(http, SoftAuthenticator()).status_code == 303
    run(app, "user", "totp", "reset", logged_in.email)
    auth = AuthActions(http)
    auth.logout()
    response = auth.login(logged_in.email, logged_in.password)
    assert response.status_code == 302 and response.headers["Location"] == "/"
