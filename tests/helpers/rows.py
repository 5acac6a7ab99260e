"""Database test helpers: what a negative test checks is unchanged."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select

from idp import db


def count(app: Flask, model: Any) -> int:
    """Return how many rows ``model``'s table holds."""
    with app.app_context():
        total: int = db.get_session().scalar(select(func.count()).select_from(model)) or 0
        return total


def snapshot(app: Flask, *, exclude: Collection[str] = ()) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of every table but ``exclude``, in a stable order: compare two."""
    with app.app_context():
        session = db.get_session()
        return {
            table.name: sorted((tuple(row) for row in session.execute(select(table))), key=repr)
            for table in db.Base.metadata.sorted_tables
            if table.name not in exclude
        }


@contextmanager
def count_statements(app: Flask) -> Iterator[list[str]]:
    """Collect every SQL statement the app's engine runs inside the block."""
    statements: list[str] = []
    engine = db.get_database(app).engine

    def collect(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", collect)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", collect)
