"""Writers on one SQLite file queue on its lock file instead of SQLite's sleeping busy handler."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from idp import sqlite_writers
from idp.db import build_engine

WRITER = textwrap.dedent(
    """
    import sys
    from sqlalchemy import text
    from idp.db import build_engine

    engine = build_engine(sys.argv[1])
    for n in range(int(sys.argv[3])):
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO row (writer, n) VALUES (:w, :n)"),
                               {"w": sys.argv[2], "n": n})
            # Read after the write, inside the transaction, as a grant does.
            connection.execute(text("SELECT count(*) FROM row")).scalar_one()
    """
)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = build_engine(f"sqlite:///{tmp_path / 'idp.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE row (writer TEXT, n INTEGER)"))
    return engine


def lock_is_free(path: Path) -> bool:
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # closing releases a lock taken here
    return True


def test_a_write_transaction_holds_the_queue_until_it_ends(engine: Engine, tmp_path: Path) -> None:
    lock = tmp_path / "idp.sqlite3-lock"
    assert oct(lock.stat().st_mode & 0o777) == "0o600"
    with engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM row"))
        assert lock_is_free(lock)  # readers never queue
        connection.execute(text("INSERT INTO row VALUES ('a', 1)"))
        assert not lock_is_free(lock)
        connection.commit()
        assert lock_is_free(lock)
        connection.execute(text("UPDATE row SET n = 2"))
        assert not lock_is_free(lock)
        connection.rollback()
        assert lock_is_free(lock)
        connection.execute(text("INSERT INTO row VALUES ('a', 3)"))
    assert lock_is_free(lock)  # returned to the pool: rolled back
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM row")).scalars().all() == [1]


def test_a_second_writer_in_one_thread_fails_instead_of_waiting_forever(engine: Engine) -> None:
    with engine.connect() as first, engine.connect() as second:
        first.execute(text("INSERT INTO row VALUES ('first', 1)"))
        with pytest.raises(OperationalError, match="database is locked"):
            second.execute(text("INSERT INTO row VALUES ('second', 1)"))
        second.rollback()
        first.commit()
        second.execute(text("INSERT INTO row VALUES ('second', 2)"))
        second.commit()
        rows = second.execute(text("SELECT writer, n FROM row ORDER BY n")).all()
    assert [tuple(row) for row in rows] == [("first", 1), ("second", 2)]


def test_writers_in_two_processes_all_commit(engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    writers = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", WRITER, url, name, "200"], stderr=subprocess.PIPE, text=True
        )
        for name in ("one", "two")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    with engine.connect() as connection:
        counts = connection.execute(
            text("SELECT writer, count(*) FROM row GROUP BY writer ORDER BY writer")
        ).all()
    assert [tuple(row) for row in counts] == [("one", 200), ("two", 200)]


def test_a_writer_stuck_mid_transaction_costs_the_others_a_bounded_wait(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_writers, "QUEUE_TIMEOUT", 0.3)
    stuck, done = threading.Event(), threading.Event()

    def hold() -> None:  # another thread's write transaction that does not end for a while
        with engine.connect() as connection:
            connection.execute(text("INSERT INTO row VALUES ('stuck', 1)"))
            stuck.set()
            done.wait(10)
            connection.commit()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert stuck.wait(10)
        with engine.connect() as connection:
            with pytest.raises(OperationalError, match="database is locked"):
                connection.execute(text("INSERT INTO row VALUES ('waiting', 2)"))
            connection.rollback()
    finally:
        done.set()
        holder.join(10)
    # The helper still waiting when the writer gave up takes the lock late and gives it back.
    lock = tmp_path / "idp.sqlite3-lock"
    assert any(lock_is_free(lock) or time.sleep(0.01) for _ in range(200))
    with engine.begin() as connection:  # and the queue works as before
        connection.execute(text("INSERT INTO row VALUES ('after', 3)"))
        rows = connection.execute(text("SELECT writer FROM row ORDER BY n")).scalars().all()
    assert rows == ["stuck", "after"]
