"""An app the factory built is freed once nothing uses it: no listener or hook keeps it."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from idp import create_app
from idp.db import get_database
from tests.helpers.oidc import register


def _built_and_used(settings: dict[str, Any]) -> weakref.ref[Any]:
    app = create_app(settings)
    register(app, "Notes")  # commits through the app's sessionmaker (its listeners run)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    get_database(app).engine.dispose()  # its pooled connections, closed as an app's owner would
    return weakref.ref(app)


def test_a_dropped_app_is_freed(settings: dict[str, Any]) -> None:
    # The metrics' listener on the app's sessionmaker once held the app: every app a process
    # built stayed alive (the tests build thousands).
    app = _built_and_used(settings)
    gc.collect()
    assert app() is None


def test_a_dropped_app_with_redis_is_freed(settings: dict[str, Any], redis_url: str) -> None:
    # With Redis, the login cache's listeners join the metrics' on the same sessionmaker.
    settings["redis_url"] = redis_url
    app = _built_and_used(settings)
    gc.collect()
    assert app() is None
