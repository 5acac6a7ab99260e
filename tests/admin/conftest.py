"""Admin API fixtures: real tokens from the real token endpoint, for admins, users and machines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.account.conftest import LAPTOP
from tests.account.conftest import sign_in
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers.cli import run
from tests.helpers.forms import csrf_token

API = "/api/admin/v1"
ADMIN_PASSWORD = "admin password, long enough"


@dataclass
class Bearer:
    """An access token and the headers that present it."""

    token: str
    refresh_token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def service_account(app: Flask, name: str = "Ops robot", *scopes: str) -> oidc.Client:
    """Register a service account with ``idp client add --service-account --scope ...``."""
    options = [arg for scope in scopes or ("admin",) for arg in ("--scope", scope)]
    result = run(app, "client", "add", name, "--service-account", *options, "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    return oidc.Client(created["client_id"], created["client_secret"], redirect_uri="")


def client_credentials_token(http: FlaskClient, client: oidc.Client, scope: str = "admin") -> Any:
    """POST /token with the client_credentials grant; return the raw response."""
    return http.post(
        "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=client.basic_auth
    )


def user_token(app: Flask, user: TestUser, scope: str = "openid admin offline_access") -> Bearer:
    """Log ``user`` in through the form and run the code flow of an admin tool; return tokens."""
    http = app.test_client()
    response = AuthActions(http).login(user.email, user.password)
    assert response.status_code == 302, response.data
    tool = oidc.register(
        app, f"Admin tool {user.id}", scope="openid profile email offline_access admin"
    )
    tokens = oidc.issue_tokens(http, tool, scope=scope)
    return Bearer(tokens["access_token"], tokens.get("refresh_token"))


@pytest.fixture
def robot(app: Flask) -> oidc.Client:
    return service_account(app)


@pytest.fixture
def robot_token(http: FlaskClient, robot: oidc.Client) -> Bearer:
    response = client_credentials_token(http, robot)
    assert response.status_code == 200, response.data
    body = response.get_json()
    assert body["scope"] == "admin"
    return Bearer(body["access_token"])


@pytest.fixture
def admin(app: Flask) -> TestUser:
    return make_user(app, "admin@example.com", ADMIN_PASSWORD, name="Ada Admin", is_admin=True)


@pytest.fixture
def admin_token(app: Flask, admin: TestUser) -> Bearer:
    return user_token(app, admin)


@pytest.fixture
def console(app: Flask, admin: TestUser) -> FlaskClient:
    """A browser signed in as the admin."""
    return sign_in(app, admin, LAPTOP, ip="192.0.2.1")


def post(http: FlaskClient, path: str, **form: Any) -> Any:
    """Submit a form of the page at ``path`` with its CSRF token."""
    page = http.get(path)
    assert page.status_code == 200, page.status_code
    return http.post(path, data={"csrf_token": csrf_token(page.data), **form})
