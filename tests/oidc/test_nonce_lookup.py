"""The nonce-reuse check at /authorize is an index lookup, however many codes are stored.

No wall-clock assertion: the test reads the plan the database chooses for the very query
/authorize sends. bench/authorize_nonce_check.py measures the time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy import String
from sqlalchemy import cast
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import select

from idp import db
from idp.db import UTCDateTime
from idp.models.login import LoginSession
from idp.models.oidc import AuthorizationCode
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc

STORED_CODES = 100_000
INDEX = "ix_oauth_authorization_code_client_id_nonce"


def store_codes(app: Flask, client: oidc.Client, clock: Clock, count: int) -> None:
    """Insert ``count`` spent codes of ``client`` (nonces ``stored-N``) in one statement."""
    with app.app_context():
        session = db.get_session()
        login = session.scalars(select(LoginSession)).one()
        now = clock()
        if session.connection().dialect.name == "postgresql":
            series: Any = select(func.generate_series(1, count).label("n")).subquery()
        else:
            series = select(literal(1).label("n")).cte(recursive=True)
            series = series.union_all(select(series.c.n + 1).where(series.c.n < count))
        number = cast(series.c.n, String)
        columns = {
            "code_hash": literal("hash-") + number,
            "client_id": literal(client.client_id),
            "user_id": literal(login.user_id),
            "login_session_id": literal(login.id),
            "redirect_uri": literal(client.redirect_uri),
            "response_type": literal("code"),
            "scope": literal("openid"),
            "nonce": literal("stored-") + number,
            "created_at": literal(now, UTCDateTime()),
            "expires_at": literal(now + timedelta(seconds=60), UTCDateTime()),
            "used_at": literal(now, UTCDateTime()),
        }
        rows = select(*columns.values()).select_from(series)
        session.execute(insert(AuthorizationCode).from_select(list(columns), rows))
        session.commit()
        if session.connection().dialect.name == "postgresql":
            # Statistics, as autovacuum would gather them on a real server.
            session.connection().exec_driver_sql("ANALYZE oauth_authorization_code")
            session.commit()


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Record every SQL statement (with its parameters) sent while the block runs."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan_of(app: Flask, statement: str, parameters: Any) -> str:
    """Return the database's plan for one statement, as text."""
    with app.app_context():
        connection = db.get_session().connection()
        if connection.dialect.name == "postgresql":
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            return "\n".join(row[0] for row in rows)
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(str(row[-1]) for row in rows)


def test_the_nonce_check_uses_the_index_with_many_stored_codes(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    store_codes(app, client, clock, STORED_CODES)
    engine = db.get_database(app).engine

    with statements(engine) as sent:
        code = oidc.get_code(http, client, nonce="a-fresh-nonce")

    assert code
    lookups = [
        (statement, parameters)
        for statement, parameters in sent
        if "FROM oauth_authorization_code" in statement and "nonce" in statement.split("WHERE")[-1]
    ]
    assert lookups, sent
    for lookup in lookups:
        plan = plan_of(app, *lookup)
        assert INDEX in plan, plan
        # Both columns are looked up in the index, not only the client's rows scanned.
        if engine.dialect.name == "sqlite":
            assert "nonce=?" in plan, plan
        else:
            assert "Seq Scan" not in plan and "nonce" in plan.split(INDEX)[-1], plan
    # And the check still works: a nonce among the 100,000 is refused, nothing is stored.
    refused = oidc.authorize(http, client, nonce=f"stored-{STORED_CODES // 2}")
    assert refused.status_code == 302
    assert oidc.query_of(refused.headers["Location"])["error"] == "invalid_request"
    with app.app_context():
        stored = db.get_session().scalar(select(func.count()).select_from(AuthorizationCode))
    assert stored == STORED_CODES + 1
