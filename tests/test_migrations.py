"""The Alembic migrations build exactly the schema the models declare, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import insert
from sqlalchemy import inspect
from sqlalchemy import select

import idp.db
import idp.models
from idp.db import Base
from idp.db import build_engine
from idp.db import current_revision
from idp.db import upgrade_database


def alembic_heads() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(Path(idp.db.__file__).parent / "migrations"))
    return list(ScriptDirectory.from_config(config).get_heads())


@pytest.fixture
def empty_engine(
    db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    """An engine on a database with no tables: a new SQLite file or a new PostgreSQL database."""
    if db_backend == "sqlite":
        engine = build_engine(f"sqlite:///{tmp_path / 'migrate.sqlite3'}")
        yield engine
        engine.dispose()
        return
    from tests.conftest import create_postgres_database
    from tests.conftest import drop_postgres_database

    admin_url: str = request.getfixturevalue("postgres_admin_url")
    url = create_postgres_database(admin_url)
    engine = build_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_postgres_database(admin_url, url)


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences: list[object] = compare_metadata(context, Base.metadata)
        return differences


def test_there_is_one_head() -> None:
    assert len(alembic_heads()) == 1


def test_every_table_is_registered_by_idp_models() -> None:
    # migrations/env.py imports idp.models only: a model defined elsewhere would be missed.
    exported = [getattr(idp.models, name) for name in idp.models.__all__]
    tables = {getattr(item, "__table__", item).name for item in exported}
    assert tables == set(Base.metadata.tables)


def test_upgrade_from_empty_matches_the_models(empty_engine: Engine) -> None:
    assert inspect(empty_engine).get_table_names() == []
    assert current_revision(empty_engine) is None
    assert schema_differences(empty_engine)  # the comparison does see a missing schema

    upgrade_database(empty_engine)

    assert current_revision(empty_engine) == alembic_heads()[0]
    assert set(inspect(empty_engine).get_table_names()) == set(Base.metadata.tables) | {
        "alembic_version"
    }
    assert schema_differences(empty_engine) == []


def test_upgrade_twice_is_harmless(empty_engine: Engine) -> None:
    upgrade_database(empty_engine)
    now = datetime.now(UTC)
    user_table = Base.metadata.tables["user_account"]
    with empty_engine.begin() as connection:
        connection.execute(
            insert(user_table).values(
                email="kept@example.com",
                subject="s1",
                name="Kept",
                is_disabled=False,
                is_admin=False,
                created_at=now,
                updated_at=now,
            )
        )

    upgrade_database(empty_engine)

    assert current_revision(empty_engine) == alembic_heads()[0]
    assert schema_differences(empty_engine) == []
    with empty_engine.connect() as connection:
        assert connection.scalars(select(user_table.c.email)).all() == ["kept@example.com"]


def test_a_sqlite_file_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    # WAL with synchronous=NORMAL: one sync per checkpoint instead of two per commit, readers
    # never blocked by the writer; the busy timeout makes concurrent writers wait, not fail.
    engine = build_engine(f"sqlite:///{tmp_path / 'wal.sqlite3'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert pragma("PRAGMA busy_timeout").scalar() == 5000
            assert pragma("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
