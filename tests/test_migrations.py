"""The Alembic migrations build exactly the schema the models declare, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy import MetaData
from sqlalchemy import insert
from sqlalchemy import inspect
from sqlalchemy import select

import idp.db
import idp.models
from idp import create_app
from idp.db import Base
from idp.db import build_engine
from idp.db import current_revision
from idp.db import downgrade_database
from idp.db import get_database
from idp.db import upgrade_database
from tests.helpers.cli import run


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


@pytest.mark.backends("postgresql")
def test_every_revision_goes_down_to_base_and_up_again(empty_engine: Engine) -> None:
    upgrade_database(empty_engine)

    downgrade_database(empty_engine, "base")

    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    upgrade_database(empty_engine)
    assert current_revision(empty_engine) == alembic_heads()[0]
    assert schema_differences(empty_engine) == []


# The schema of the previous release: a database made by it is upgraded by ``idp init``.
PREVIOUS_RELEASE = "0005"


def test_init_upgrades_a_database_of_the_previous_release(
    empty_engine: Engine, keys_dir: Path, tmp_path: Path
) -> None:
    upgrade_database(empty_engine, PREVIOUS_RELEASE)
    old = MetaData()
    old.reflect(empty_engine)  # the tables as that release made them, not as the models say
    now = datetime.now(UTC)
    with empty_engine.begin() as connection:
        user_id = connection.execute(
            insert(old.tables["user_account"])
            .values(
                email="kept@example.com",
                subject="s1",
                name="Kept",
                is_disabled=False,
                is_admin=False,
                created_at=now,
                updated_at=now,
            )
            .returning(old.tables["user_account"].c.id)
        ).scalar_one()
        connection.execute(
            insert(old.tables["login_session"]).values(
                sid="sid-1",
                token_hash="0" * 64,
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=1),
                auth_time=now,
                amr=["pwd"],
                details={},
            )
        )
    app = create_app(
        {
            "database_url": empty_engine.url.render_as_string(hide_password=False),
            "keys_dir": str(keys_dir),  # the run's keys: no key generation to wait for
            "instance_dir": str(tmp_path / "instance"),
            "secret_key": "test-secret-key-not-for-production",
        }
    )

    result = run(app, "init")

    get_database(app).engine.dispose()
    assert result.exit_code == 0, result.output
    head = alembic_heads()[0]
    assert f"Database upgraded from {PREVIOUS_RELEASE} to revision {head}." in result.output
    assert schema_differences(empty_engine) == []
    with empty_engine.connect() as connection:
        users = connection.execute(select(Base.metadata.tables["user_account"])).all()
        logins = connection.execute(select(Base.metadata.tables["login_session"])).all()
    assert [(row.id, row.email, row.password_changed_at) for row in users] == [
        (user_id, "kept@example.com", None)
    ]
    assert [(row.sid, row.user_id, row.revoked_at) for row in logins] == [("sid-1", user_id, None)]


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
