"""The SQLite writers' queue: every idp process's writers on one SQLite file wait in line.

SQLite's own busy handler makes a writer that finds the database locked sleep and retry
(1, 2, 5, 10 ... then 100 ms steps): under load a waiting writer keeps missing the moments the
lock is free, while newcomers take it, and a few requests stall for hundreds of ms (measured:
refresh p99 646 ms at p50 14 ms). So connections of every idp process on one SQLite file
queue for writing on a lock file beside it (flock: the kernel wakes a waiter when the holder
commits) before SQLite takes its own write lock. SQLite's locking still decides what is
safe: the queue only orders writers, and a writer outside it (another program) meets the
busy timeout as before.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from typing import Any

_DML = ("INSERT", "UPDATE", "DELETE", "REPLACE")
QUEUE_TIMEOUT = 5.0  # seconds, as PRAGMA busy_timeout
_held_by_thread = threading.local()


def connection_class(lock_path: str) -> type[sqlite3.Connection]:
    """Return a sqlite3 connection class whose transaction's end leaves the writers' queue."""

    class WriterQueueConnection(sqlite3.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self.queued = False
            weakref.finalize(self, os.close, self.queue_fd)

        def enter_queue(self) -> None:
            # The connection through which this thread holds the queue, if any (a weak
            # reference: a connection dropped unclosed lost the lock with its descriptor).
            holders: dict[str, weakref.ref[Any]] = _held_by_thread.__dict__.setdefault(
                "holders", {}
            )
            holder = holders.get(lock_path, lambda: None)()
            if holder is not None and holder.queued:
                # This thread writes through another connection: waiting would never end.
                raise sqlite3.OperationalError("database is locked")
            wait_for_lock(self.queue_fd)
            holders[lock_path] = weakref.ref(self)
            self.queued = True

        def leave_queue(self) -> None:
            if self.queued:
                self.queued = False
                _held_by_thread.__dict__.get("holders", {}).pop(lock_path, None)
                fcntl.flock(self.queue_fd, fcntl.LOCK_UN)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.leave_queue()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.leave_queue()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.leave_queue()

    return WriterQueueConnection


def wait_for_lock(fd: int) -> None:
    """Take the writers' lock, waiting in the kernel at most QUEUE_TIMEOUT (the busy timeout).

    A blocking ``flock`` wakes the waiter as soon as the holder commits (polling lets newcomers
    cut in: refresh p99 160 ms instead of 65 ms), but cannot be bounded. So a helper thread
    blocks on a duplicate of the descriptor (the same lock) while the caller waits at most
    QUEUE_TIMEOUT: a writer stuck mid-transaction costs the others "database is locked" (a 503),
    as SQLite's own lock does, not a hang. A helper that gets the lock too late gives it back.

    Raises:
        sqlite3.OperationalError: the lock was not free within QUEUE_TIMEOUT.

    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    taken, give_back, decided = threading.Event(), threading.Event(), threading.Lock()
    duplicate = os.dup(fd)  # the helper's own: this connection may close its descriptor

    def take() -> None:
        try:
            fcntl.flock(duplicate, fcntl.LOCK_EX)
            with decided:
                if give_back.is_set():
                    fcntl.flock(duplicate, fcntl.LOCK_UN)
                else:
                    taken.set()
        finally:
            os.close(duplicate)  # the lock stays with the connection's descriptor

    threading.Thread(target=take, name="sqlite-writers-queue", daemon=True).start()
    if taken.wait(QUEUE_TIMEOUT):
        return
    with decided:
        if taken.is_set():
            return
        give_back.set()
    raise sqlite3.OperationalError("database is locked")


def queue_writer(
    connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    # The statements before which the sqlite3 module opens a transaction (its BEGIN DEFERRED
    # takes SQLite's write lock at once); the commit or rollback that ends it leaves the queue.
    dbapi_connection = cursor.connection
    if (
        dbapi_connection.isolation_level is not None
        and not dbapi_connection.in_transaction
        and not dbapi_connection.queued
        and statement.lstrip()[:7].upper().startswith(_DML)
    ):
        dbapi_connection.enter_queue()
