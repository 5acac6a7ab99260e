"""Engine, per-request session and declarative base (one of each per app, in app.extensions)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask import current_app
from flask import g
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement
from sqlalchemy import DateTime
from sqlalchemy import Engine
from sqlalchemy import MetaData
from sqlalchemy import create_engine
from sqlalchemy import delete
from sqlalchemy import event
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from idp import errors
from idp import sqlite_writers
from idp.errors import ConfigurationError
from idp.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, return aware UTC: SQLite keeps no time zone, PostgreSQL must agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]


def utcnow() -> datetime:
    """Return the current time, aware UTC."""
    return datetime.now(UTC)


def build_engine(database_url: str) -> Engine:
    """Create an engine (touching nothing on disk); SQLite gets foreign keys on."""
    url = make_url(database_url)
    # Parameters are e-mails, hashes, client ids: never in logs or error messages.
    options: dict[str, Any] = {"future": True, "hide_parameters": True}
    sqlite = url.get_backend_name() == "sqlite"
    # The SQLite file, if the database is one (not in memory).
    database = url.database if sqlite and url.database not in ("", ":memory:") else None
    if database and Path(database).parent.is_dir():
        # SQLite would create a missing file 0644; no directory is made here (`idp init`).
        create_private_file(Path(database))
    if not sqlite:
        options["pool_pre_ping"] = True
    if database:
        options["connect_args"] = {"factory": sqlite_writers.connection_class(f"{database}-lock")}
    engine = create_engine(url, **options)
    if database:
        event.listen(engine, "before_cursor_execute", sqlite_writers.queue_writer)
    if sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            # WAL: readers never wait for the writer, and a commit appends to the log instead of
            # rewriting pages through a rollback journal. synchronous=NORMAL then syncs the log
            # at checkpoints, not at every commit: a commit survives a crash of any process;
            # only a power loss or OS crash may undo the last commits before a checkpoint,
            # never corrupt the file (https://www.sqlite.org/wal.html#durability). WAL needs
            # one host's shared memory: the database must not be on a network file system.
            if database:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def create_private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (0600) unless it exists.

    SQLite would create the database 0644 (password hashes, e-mails, the audit trail), and
    gives its -journal, -wal and -shm files the database file's permissions.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def init_app(app: Flask, settings: Settings) -> None:
    """Build the engine and session factory for this app and close sessions after requests."""
    engine = build_engine(settings.database_url)
    app.extensions["idp.db"] = Database(engine, sessionmaker(engine, expire_on_commit=False))
    app.extensions.setdefault("idp.clock", utcnow)
    app.register_error_handler(DBAPIError, _database_unavailable)

    @app.teardown_appcontext
    def _close_session(exception: BaseException | None) -> None:
        session: Session | None = g.pop("idp_db_session", None)
        if session is not None:
            if exception is not None:
                session.rollback()
            session.close()


def _database_unavailable(error: DBAPIError) -> ResponseReturnValue:
    """Answer 503 to a request the database failed (unreachable, or a statement refused).

    The request's transaction is rolled back first: nothing it wrote is kept, and nothing
    later in the request (an audit record) commits half of it.
    """
    session: Session | None = g.pop("idp_db_session", None)
    if session is not None:
        session.rollback()
        session.close()
    # The class only: hide_parameters keeps values out, but the message may name the host.
    logging.getLogger(__name__).error(
        "database unavailable: %s", type(error.orig or error).__name__
    )
    return errors.render_unavailable()


def get_database(app: Flask | None = None) -> Database:
    """Return this app's Database."""
    database: Database = (app or current_app).extensions["idp.db"]
    return database


def get_session() -> Session:
    """Return the SQLAlchemy session of the current app context, opening it on first use."""
    if "idp_db_session" not in g:
        g.idp_db_session = get_database().sessionmaker()
    session: Session = g.idp_db_session
    return session


def now() -> datetime:
    """Return the app's notion of now (tests inject a clock in ``app.extensions``)."""
    clock: Callable[[], datetime] = current_app.extensions["idp.clock"]
    return clock()


# Rows per multi-row INSERT of insert_rows: a few thousand bind parameters, well below every
# driver's limit (SQLite 32,766, PostgreSQL 65,535).
INSERT_BATCH = 500


def insert_rows(model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (column values) in one multi-row statement per INSERT_BATCH rows.

    For many rows whose objects the caller does not need: the unit of work would INSERT them
    one at a time on SQLite, which cannot return new ids in order (SQLAlchemy's
    "insertmanyvalues" then falls back to one statement per row).
    """
    for first in range(0, len(rows), INSERT_BATCH):
        get_session().execute(insert(model).values(list(rows[first : first + INSERT_BATCH])))


def build_upserts(
    model: type[Base],
    index_elements: Sequence[InstrumentedAttribute[Any]],
    set_: Callable[[Any], Mapping[str, Any]],
) -> dict[str, Any]:
    """Return ``INSERT … ON CONFLICT (index_elements) DO UPDATE SET set_(excluded)`` by dialect.

    For the two dialects that have it (PostgreSQL, SQLite), built once at import: a hot path
    only binds the row's values (``session.execute(statement, values)``).
    """
    built = {}
    for name, insert_of in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert)):
        statement = insert_of(model)
        built[name] = statement.on_conflict_do_update(
            index_elements=list(index_elements), set_=dict(set_(statement.excluded))
        )
    return built


def run_upsert(built: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Execute the current database's statement of :func:`build_upserts` with ``values``."""
    session = get_session()
    session.execute(built[session.get_bind().dialect.name], values)


# The periodic sweep deletes rows this long after they stopped mattering (expired, ended,
# delivered), at most PURGE_BATCH rows of a table per run, so no run holds locks for long.
PURGE_AFTER = timedelta(days=1)
PURGE_BATCH = 1000


def delete_batch(
    key: InstrumentedAttribute[Any], *conditions: ColumnElement[bool], newest_first: bool = False
) -> int:
    """Delete at most PURGE_BATCH rows of ``key``'s table matching ``conditions``; return how many.

    ``newest_first`` deletes children before the parents they point to (ids grow).
    """
    order = key.desc() if newest_first else key
    keys = list(
        get_session().scalars(select(key).where(*conditions).order_by(order).limit(PURGE_BATCH))
    )
    if keys:
        get_session().execute(delete(key.class_).where(key.in_(keys)))
    return len(keys)


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def create_sqlite_file(engine: Engine) -> None:
    """Create a SQLite database file 0600 in its directory, made 0700 (``idp init`` only).

    Other commands never do: one run with a mistyped database_url leaves no directories behind.
    """
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database and database != ":memory:":
        folder = Path(database).parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_private_file(Path(database))
        except OSError as error:
            raise ConfigurationError(
                f"database_url: cannot create {folder}: {error.strerror}"
            ) from None


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade every table to ``revision`` (the newest); safe to run twice."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)


def downgrade_database(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (``base``: no table); tests and operators only."""
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """Return the database's Alembic revision, None when it was never initialised."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        revision: str | None = MigrationContext.configure(connection).get_current_revision()
        return revision
