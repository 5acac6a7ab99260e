"""Behind a reverse proxy: ``trusted_proxies`` decides whose X-Forwarded-For counts.

The client IP feeds the audit trail, the per-IP rate limit and token usage monitoring; the
scheme, ``request.is_secure``. With 0 proxies (the default) the headers are ignored.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask import request
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from tests.conftest import TestUser
from tests.helpers.forms import csrf_token
from tests.tokens.conftest import bearer
from tests.tokens.test_usage import pat_for
from tests.tokens.test_usage import usage_rows
from tests.tokens.test_usage import use

PROXY = {"REMOTE_ADDR": "10.0.0.2"}  # the proxy is the peer the IdP sees


def forwarded(client_ip: str, **headers: str) -> dict[str, Any]:
    """Request options of a request relayed by the proxy (over https) for ``client_ip``."""
    return {
        "environ_base": PROXY,
        "headers": {"X-Forwarded-For": client_ip, "X-Forwarded-Proto": "https", **headers},
    }


def failure_ips(app: Flask) -> list[str | None]:
    with app.app_context():
        query = select(AuditEvent.ip).where(AuditEvent.event == "login_failure")
        return list(db.get_session().scalars(query.order_by(AuditEvent.id)))


def fail_login(http: FlaskClient, user: TestUser, **options: Any) -> int:
    page = http.get("/login", **options)
    form = {"csrf_token": csrf_token(page.data), "username": user.email, "password": "nope"}
    return http.post("/login", data=form, **options).status_code


@pytest.fixture
def behind_proxy(settings: dict[str, Any]) -> dict[str, Any]:
    settings["trusted_proxies"] = 1
    settings["login_rate_limit"] = "2 per minute"
    return settings


def add_scheme_probe(app: Flask) -> None:
    app.add_url_rule("/scheme-probe", "scheme_probe", lambda: {"secure": request.is_secure})


def test_the_real_client_is_seen_through_one_trusted_proxy(
    behind_proxy: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    app: Flask = request.getfixturevalue("app")
    http: FlaskClient = request.getfixturevalue("http")
    user: TestUser = request.getfixturevalue("user")
    add_scheme_probe(app)
    # Only the entry the proxy appended counts: what the client wrote before it is forgeable.
    assert fail_login(http, user, **forwarded("203.0.113.5, 198.51.100.7")) == 401
    assert failure_ips(app) == ["198.51.100.7"]
    assert http.get("/scheme-probe", **forwarded("198.51.100.7")).get_json() == {"secure": True}

    # The per-IP limit counts each client apart, not the proxy they share.
    assert fail_login(http, user, **forwarded("198.51.100.7")) == 401
    assert fail_login(http, user, **forwarded("198.51.100.7")) == 429
    assert fail_login(http, user, **forwarded("198.51.100.8")) == 401

    pat = pat_for(app, user)
    response = http.get("/userinfo", **forwarded("192.0.2.9", **bearer(pat["token"])))
    assert response.status_code == 200
    assert [(row.ip, row.network) for row in usage_rows(app)] == [("192.0.2.9", "192.0.2.0/24")]


def test_forwarded_headers_change_nothing_without_trusted_proxies(
    settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    settings["login_rate_limit"] = "2 per minute"  # trusted_proxies: the default, 0
    app: Flask = request.getfixturevalue("app")
    http: FlaskClient = request.getfixturevalue("http")
    user: TestUser = request.getfixturevalue("user")
    add_scheme_probe(app)
    assert fail_login(http, user, **forwarded("198.51.100.7")) == 401
    assert failure_ips(app) == ["10.0.0.2"]
    assert http.get("/scheme-probe", **forwarded("198.51.100.7")).get_json() == {"secure": False}
    # A new X-Forwarded-For on each attempt does not escape the limit of the real peer.
    assert fail_login(http, user, **forwarded("198.51.100.8")) == 401
    assert fail_login(http, user, **forwarded("198.51.100.9")) == 429

    pat = pat_for(app, user)
    use(http, pat["token"], "10.0.0.2")
    response = http.get("/userinfo", **forwarded("192.0.2.9", **bearer(pat["token"])))
    assert response.status_code == 200
    assert [(row.ip, row.count) for row in usage_rows(app)] == [("10.0.0.2", 2)]
