"""Operations endpoints (/healthz, /readyz) and the error pages that never leak internals."""

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


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    def explode() -> str:
        raise RuntimeError("secret detail")

    app.add_url_rule("/explode", "explode", explode)
    return app


def test_unexpected_error_renders_a_generic_page(
    failing_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    response = failing_app.test_client().get("/explode")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Internal Server Error" in body
    assert "secret detail" not in body
    assert "Traceback" not in body
    assert "RuntimeError" not in body
    # The operator still gets the stack in the log.
    assert any(
        record.exc_info and "secret detail" in str(record.exc_info[1]) for record in caplog.records
    )


def test_unexpected_error_as_json_hides_the_detail(failing_app: Flask) -> None:
    response = failing_app.test_client().get("/explode", headers={"Accept": "application/json"})
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "internal_server_error"
    assert "secret detail" not in response.get_data(as_text=True)


def test_unknown_url_is_a_404_page(http: FlaskClient) -> None:
    response = http.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Not Found" in response.get_data(as_text=True)


def test_wrong_method_is_a_405_page(http: FlaskClient) -> None:
    response = http.post("/healthz")
    assert response.status_code == 405
    assert "Method Not Allowed" in response.get_data(as_text=True)
