"""Operations endpoints (/healthz, /readyz); the error pages are in test_pages.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.db import get_database

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
UNREACHABLE_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/idp?connect_timeout=2"


def test_healthz(http: FlaskClient) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_the_database(http: FlaskClient) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok"}}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_checks_redis_when_configured(
    settings: dict[str, Any], redis_url: str, request: pytest.FixtureRequest
) -> None:
    settings["redis_url"] = redis_url
    http: FlaskClient = request.getfixturevalue("http")
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_unreachable_redis(
    settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    settings["redis_url"] = UNREACHABLE_REDIS
    http: FlaskClient = request.getfixturevalue("http")
    response = http.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "unreachable"},
    }
    assert "127.0.0.1:1" not in response.get_data(as_text=True)


@pytest.fixture
def unreachable_database_app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "database_url": UNREACHABLE_POSTGRES,
            "keys_dir": str(tmp_path / "keys"),
            "instance_dir": str(tmp_path / "instance"),
            "secret_key": "test-secret-key-not-for-production",
            "TESTING": True,
        }
    )
    yield app
    get_database(app).engine.dispose()


def test_readyz_reports_unreachable_database(unreachable_database_app: Flask) -> None:
    http = unreachable_database_app.test_client()
    assert http.get("/healthz").status_code == 200  # alive, though not ready
    response = http.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "checks": {"database": "unreachable"}}
    assert "psycopg" not in response.get_data(as_text=True)
