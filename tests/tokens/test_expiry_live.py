"""A personal access token expires in real time on a real ``idp serve`` (SQLite, PostgreSQL).

The token is made through the service on the live IdP's database with an expiry three seconds
ahead (the page and the CLI count in days): it works, then, once real time has passed it,
userinfo refuses it with 401 ``invalid_token`` and introspection calls it inactive.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from idp.settings import get_settings
from idp.tokens.service import create_token
from idp.users.service import require_user_by_email
from tests.conftest import TestUser
from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import initialised_idp  # noqa: F401 (fixtures, found by name)
from tests.e2e.conftest import running_idp
from tests.helpers import oidc

LIFETIME = timedelta(seconds=3)


@pytest.fixture
def idp_on_backend(app: Flask, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LiveIdp]:
    """``idp serve`` on the database of this test's ``app`` (SQLite or PostgreSQL)."""
    template: Path = request.getfixturevalue("initialised_idp")
    env = {"IDP_DATABASE_URL": get_settings(app).database_url}
    with running_idp(template, tmp_path / "live", env) as live:
        yield live


def call(url: str, *, headers: dict[str, str], data: bytes | None = None) -> tuple[int, Any, Any]:
    """Return the status, the headers and the JSON body of one request."""
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as answer:
        return answer.code, answer.headers, json.loads(answer.read() or b"null")


def test_a_pat_stops_working_when_its_expiry_passes(
    app: Flask, idp_on_backend: LiveIdp, user: TestUser
) -> None:
    live = idp_on_backend
    api = oidc.register(
        app, "Ledger API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )
    expires_at = datetime.now(UTC).replace(microsecond=0) + LIFETIME
    with app.app_context():  # the same database the live IdP serves from
        _, secret = create_token(
            require_user_by_email(user.email),
            name="short",
            scopes=["openid"],
            expires_at=expires_at,
        )
    credentials = base64.b64encode(f"{api.client_id}:{api.client_secret}".encode()).decode()
    api_headers = {"Authorization": f"Basic {credentials}"}
    form = urllib.parse.urlencode({"token": secret}).encode()

    status, _, claims = call(f"{live.url}/userinfo", headers={"Authorization": f"Bearer {secret}"})
    assert status == 200 and claims["sub"]
    status, _, body = call(f"{live.url}/introspect", headers=api_headers, data=form)
    assert status == 200 and body["active"] is True
    assert body["exp"] == int(expires_at.timestamp())

    time.sleep(max((expires_at - datetime.now(UTC)).total_seconds(), 0) + 0.2)
    status, headers, _ = call(f"{live.url}/userinfo", headers={"Authorization": f"Bearer {secret}"})
    assert status == 401
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, _, body = call(f"{live.url}/introspect", headers=api_headers, data=form)
    assert status == 200 and body == {"active": False}
