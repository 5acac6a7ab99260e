"""Outbound notices off the request path: one worker thread per process draining a queue.

A request that decides to tell someone (an e-mail, a webhook) commits first, then hands the
sending to the outbox and answers at once: a slow or dead SMTP server or webhook receiver
never holds a user's request. A failing job is logged (its kind and the error's type, never
its content) and the worker goes on; at shutdown the queue is drained within a deadline.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from flask import current_app

# How long an idle worker waits for more work before its thread ends (the next job starts
# another): an app that never sends keeps no thread, and a test's app leaves none behind.
IDLE_EXIT = timedelta(seconds=10)
# At shutdown, the jobs still queued get this long in all (each is bound by its own deadline).
DRAIN_DEADLINE = timedelta(seconds=10)
EXTENSION = "idp.outbox"

logger = logging.getLogger(__name__)


class Outbox:
    """A queue of jobs (callables without arguments) run one at a time by a worker thread."""

    def __init__(self, name: str = "idp-outbox") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], object]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._atexit = False

    def submit(self, kind: str, job: Callable[[], object]) -> None:
        """Queue ``job`` (``kind`` names it in logs); start the worker if none runs."""
        with self._lock:
            if self._closed:
                logger.warning("%s not sent: the process is shutting down", kind)
                return
            self._pending += 1
            self._jobs.put((kind, job))
            if self._thread is None:
                if not self._atexit:
                    atexit.register(self.close)
                    self._atexit = True
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                kind, job = self._jobs.get(timeout=IDLE_EXIT.total_seconds())
            except queue.Empty:
                with self._lock:
                    if self._pending == 0:
                        self._thread = None
                        return
                continue
            try:
                job()
            except Exception as error:  # one failing notice must not stop the rest
                logger.warning("%s failed: %s", kind, type(error).__name__)
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def flush(self, timeout: timedelta = DRAIN_DEADLINE) -> bool:
        """Wait until every queued job has run; return False when ``timeout`` ran out first."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout.total_seconds())

    def close(self, timeout: timedelta = DRAIN_DEADLINE) -> None:
        """Refuse new jobs and drain the queue within ``timeout`` (at process exit)."""
        with self._lock:
            self._closed = True
        if not self.flush(timeout):
            logger.warning("%s: %d notice(s) not sent at shutdown", self.name, self._pending)


def init_app(app: Flask) -> None:
    """Give the app its outbox (the worker thread starts with the first job, after a fork)."""
    app.extensions[EXTENSION] = Outbox()


def get_outbox(app: Flask | None = None) -> Outbox:
    """Return the app's outbox (the current app's by default)."""
    outbox: Outbox = (app or current_app).extensions[EXTENSION]
    return outbox
