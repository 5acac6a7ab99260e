"""``idp init [--demo]`` on a database that does not exist yet: Alembic head, keys, demo data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy import select

import idp.db
from idp import create_app
from idp import db
from idp.db import Base
from idp.models import User
from tests.conftest import FAST_HASH
from tests.conftest import create_postgres_database
from tests.conftest import drop_postgres_database
from tests.helpers.cli import run


def alembic_head() -> str:
    config = Config()
    config.set_main_option("script_location", str(Path(idp.db.__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def fresh_database_url(
    db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database that exists but has no tables (SQLite: not even a file or its folder)."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'idp.sqlite3'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    url = create_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture
def empty_keys_dir(tmp_path: Path) -> Path:
    path = tmp_path / "empty-keys"
    path.mkdir()
    return path


@pytest.fixture
def fresh_app(fresh_database_url: str, empty_keys_dir: Path, tmp_path: Path) -> Iterator[Flask]:
    settings: dict[str, Any] = {
        "issuer": "http://idp.test",
        "database_url": fresh_database_url,
        "keys_dir": str(empty_keys_dir),
        "instance_dir": str(tmp_path / "instance"),
        "secret_key": "test-secret-key-not-for-production",
        **FAST_HASH,
        "TESTING": True,
    }
    app = create_app(settings)
    yield app
    db.get_database(app).engine.dispose()


def table_names(app: Flask) -> set[str]:
    engine = db.get_database(app).engine
    if engine.dialect.name == "sqlite" and not Path(str(engine.url.database)).exists():
        return set()  # not even its folder: only `idp init` creates them
    return set(inspect(engine).get_table_names())


def key_files(path: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(path.iterdir())}


def users(app: Flask) -> list[tuple[str, bool]]:
    with app.app_context():
        rows = db.get_session().scalars(select(User).order_by(User.email))
        return [(user.email, user.is_admin) for user in rows]


def test_init_creates_the_schema_at_head_and_the_keys(
    fresh_app: Flask, empty_keys_dir: Path
) -> None:
    assert table_names(fresh_app) == set()  # no alembic_version either

    result = run(fresh_app, "init")
    assert result.exit_code == 0, result.output
    assert f"Database upgraded from empty to revision {alembic_head()}." in result.stdout

    assert table_names(fresh_app) == set(Base.metadata.tables) | {"alembic_version"}
    assert db.current_revision(db.get_database(fresh_app).engine) == alembic_head()
    with fresh_app.app_context():
        from idp.keys.store import get_key_store

        kinds = {key.kind for key in get_key_store().list_keys(db.now())}
    assert kinds == {"RS256", "ES256", "SAML"}
    assert result.stdout.count("Created ") == 3
    files = key_files(empty_keys_dir)
    assert "keyring.json" in files and len(files) > 3
    assert users(fresh_app) == []


def test_init_twice_is_harmless(fresh_app: Flask, empty_keys_dir: Path) -> None:
    assert run(fresh_app, "init").exit_code == 0
    run(fresh_app, "user", "add", "carol@example.com", "--name", "Carol")
    files = key_files(empty_keys_dir)

    again = run(fresh_app, "init")
    assert again.exit_code == 0, again.output
    assert f"Database is up to date (revision {alembic_head()})." in again.stdout
    assert "Signing keys are present." in again.stdout
    assert "Created" not in again.stdout
    assert key_files(empty_keys_dir) == files
    assert users(fresh_app) == [("carol@example.com", False)]


def test_init_demo_seeds_once(fresh_app: Flask) -> None:
    expected = [
        ("admin@example.com", True),
        ("alice@example.com", False),
        ("bob@example.com", False),
    ]
    result = run(fresh_app, "init", "--demo")
    assert result.exit_code == 0, result.output
    assert users(fresh_app) == expected
    assert result.stdout.count("Demo user ") == 3

    again = run(fresh_app, "init", "--demo")
    assert again.exit_code == 0, again.output
    assert users(fresh_app) == expected
    assert again.stdout.count(" exists ") == 3


def test_demo_users_can_log_in(fresh_app: Flask) -> None:
    from idp.demo import DEMO_USERS
    from tests.conftest import AuthActions

    assert run(fresh_app, "init", "--demo").exit_code == 0
    for email, _name, password, _admin, _groups in DEMO_USERS:
        auth = AuthActions(fresh_app.test_client())
        assert auth.login(email, password).status_code == 302, email
