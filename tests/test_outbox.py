"""The outbox: jobs run off the caller's thread, one failure stops nothing, shutdown drains."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest

from idp.outbox import Outbox


def fail() -> None:
    raise RuntimeError("smtp://user:hunter2@mail.example.com refused")


def test_a_failing_job_is_logged_without_its_content_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = Outbox("test-outbox")
    done: list[str] = []
    caller = threading.get_ident()
    with caplog.at_level(logging.WARNING, logger="idp.outbox"):
        outbox.submit("security e-mail", fail)
        outbox.submit("security webhook", lambda: done.append(str(threading.get_ident())))
        assert outbox.flush(timedelta(seconds=10))
    assert done and done[0] != str(caller)  # run by the worker, not by the caller
    assert "security e-mail failed: RuntimeError" in caplog.text
    assert "hunter2" not in caplog.text


def test_close_drains_the_queue_then_refuses_more(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox("test-outbox")
    gate = threading.Event()
    done: list[int] = []
    outbox.submit("first", lambda: gate.wait(10))
    outbox.submit("second", lambda: done.append(2))
    assert not outbox.flush(timedelta(milliseconds=50))  # the first job still runs
    gate.set()
    outbox.close()
    assert done == [2]
    with caplog.at_level(logging.WARNING, logger="idp.outbox"):
        outbox.submit("late", lambda: done.append(3))
    assert done == [2] and "late not sent" in caplog.text
