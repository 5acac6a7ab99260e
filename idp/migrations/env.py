"""Alembic environment: runs on the connection handed over by idp.db.upgrade_database."""

from alembic import context
from sqlalchemy import Connection
from sqlalchemy import create_engine

from idp import models  # noqa: F401  (registers every table on Base.metadata)
from idp.db import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run_on(connection)
        return
    _run_on(connection)


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
