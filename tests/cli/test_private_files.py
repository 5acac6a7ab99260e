"""The SQLite database and ``instance/`` are readable by their owner only, as the keys are."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.helpers.cli import console as run_idp


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def idp_init(cwd: Path, **settings: str) -> None:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    umask = os.umask(0o022)  # the usual umask, under which SQLite creates its files 0644
    try:
        result = run_idp("init", env={**clean, **settings}, cwd=cwd)
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr


def assert_private_database(path: Path) -> None:
    assert mode(path) == 0o600
    # SQLite gives its side files the database file's mode: write in WAL mode to see them.
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE probe (x)")
        connection.commit()
        for suffix in ("-wal", "-shm"):
            assert mode(path.with_name(path.name + suffix)) == 0o600, suffix
    finally:
        connection.close()


def test_default_instance_and_database_are_private(tmp_path: Path) -> None:
    idp_init(tmp_path)
    instance = tmp_path / "instance"
    assert mode(instance) == 0o700
    assert mode(instance / "secret_key") == 0o600
    assert_private_database(instance / "idp.sqlite3")


@pytest.mark.parametrize("directory", ["elsewhere", "elsewhere/deeper"])
def test_a_database_elsewhere_is_private(tmp_path: Path, directory: str) -> None:
    path = tmp_path / directory / "idp.db"
    idp_init(tmp_path, IDP_DATABASE_URL=f"sqlite:///{path}", IDP_SECRET_KEY="configured")
    assert mode(path.parent) == 0o700
    assert_private_database(path)
    assert not (tmp_path / "instance").exists()


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    # The operator's choice (a group that backs it up) is theirs: only new files are ours.
    path = tmp_path / "idp.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    idp_init(tmp_path, IDP_DATABASE_URL=f"sqlite:///{path}", IDP_SECRET_KEY="configured")
    assert mode(path) == 0o640
