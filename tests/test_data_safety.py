"""A database failure anywhere in a multi-row change answers 503 and writes nothing.

A SQLAlchemy event fails the Nth statement of one request, for every N until the request
gets through: each failed attempt must leave every table exactly as it was (the change is
one transaction), and the next attempt must succeed on that untouched state.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from idp.db import Base
from idp.db import get_database
from idp.sessions.logout import FIRST_RETRY
from idp.sessions.logout import run_maintenance
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.forms import csrf_token
from tests.test_ops import unreachable_database_app  # noqa: F401 (a fixture, found by name)


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as running:
        yield running


# Token monitoring counts each presentation of a token in its own commit, before the
# request's change, on purpose: a thief's attempt is counted even when the request fails.
OBSERVATIONS = {"token_usage"}


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: what a failed request must leave alone."""
    with get_database(app).engine.connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
            if table.name not in OBSERVATIONS
        }


@contextmanager
def failing_statement(app: Flask, number: int) -> Iterator[list[int]]:
    """Make the ``number``-th SQL statement from now fail as a lost connection would."""
    engine = get_database(app).engine
    seen = [0]

    def fail(*args: Any) -> None:
        seen[0] += 1
        if seen[0] == number:
            raise OperationalError("injected", None, ConnectionError("injected failure"))

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", fail)


def attempts_until_success(
    app: Flask, send: Callable[[], Any], check_refusal: Callable[[Any], None]
) -> Any:
    """Fail statement 1, 2, ... of ``send`` until it gets through; return that response.

    It gets through once the failing statement comes after its commit (or never comes).
    """
    before = snapshot(app)  # each refused attempt is checked to leave it so
    for number in range(1, 200):
        with failing_statement(app, number):
            response = send()
        if response.status_code != 503:
            return response
        check_refusal(response)
        assert snapshot(app) == before, f"statement {number} failed: rows changed"
    raise AssertionError("the request never got through")


def refused_json(response: Any) -> None:
    assert response.status_code == 503, response.data
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"]


def refused_page(response: Any) -> None:
    assert response.status_code == 503, response.data
    assert response.mimetype == "text/html"


def test_token_issuance_and_refresh_are_all_or_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, scope="openid profile email offline_access")
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http,
        client,
        scope="openid offline_access",
        code_challenge=challenge,
        code_challenge_method="S256",
    )

    # Authorization code -> access, ID and refresh token (its family), participant, audit.
    issued = attempts_until_success(
        app, lambda: oidc.exchange(http, client, code, code_verifier=verifier), refused_json
    )
    assert issued.status_code == 200, issued.data
    tokens = issued.get_json()

    # Refresh: rotation of the old token and the new pair in one transaction.
    def refresh() -> Any:
        return http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=client.basic_auth,
        )

    refreshed = attempts_until_success(app, refresh, refused_json)
    assert refreshed.status_code == 200, refreshed.data
    assert oidc.token_rows(app)[0][2] is not None  # the first token rotated once, now
    assert len(oidc.token_rows(app)) == 2


def test_session_revocation_and_its_fan_out_are_all_or_nothing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    form = {"csrf_token": csrf_token(http.get("/logout").data)}

    # Ending the session: the session row, its tokens, the queued back-channel delivery.
    ended = attempts_until_success(app, lambda: http.post("/logout", data=form), refused_page)

    # It got through when the failure hit the delivery right after the commit: the end and
    # its queued delivery are stored, and the sweep delivers it once its back-off passed.
    assert ended.status_code == 200, ended.data
    rx.assert_tokens_dead(http, client, tokens)
    assert receiver.received == []
    clock.advance(seconds=FIRST_RETRY.total_seconds())
    with app.app_context():
        run_maintenance()
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is not None
    assert len(receiver.received) == 1


def test_an_unreachable_database_answers_503_to_a_browser_and_a_client(
    request: pytest.FixtureRequest,
) -> None:
    app: Flask = request.getfixturevalue("unreachable_database_app")
    http = app.test_client()
    page = http.get("/login")
    login = http.post(
        "/login",
        data={"csrf_token": csrf_token(page.data), "username": "a@example.com", "password": "x"},
    )
    refused_page(login)
    assert b"temporarily unavailable" in login.data and b"psycopg" not in login.data

    token = http.post("/token", data={"grant_type": "client_credentials"}, auth=("c", "s"))
    refused_json(token)
    assert set(token.get_json()) == {"error", "error_description"}
