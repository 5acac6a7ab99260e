"""Prometheus metrics: counts of the committed audit trail, request durations, live sessions.

Counters move when an audit event is committed (a rolled-back login counts nothing). Under
``idp serve`` every gunicorn worker writes its values to the private directory named by
``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker sums them all.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask import request
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp import audit
from idp import db
from idp.logs import get_request_duration
from idp.models.audit import AuditEvent

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Audit events whose commit moves a counter.
LOGIN_RESULTS = {"login_success": "success", "login_failure": "failure"}
_PENDING = "idp.metrics.pending"


@dataclass
class Metrics:
    registry: CollectorRegistry
    logins: Counter
    tokens_issued: Counter
    saml_assertions: Counter
    logouts: Counter
    request_duration: Histogram


def build_metrics() -> Metrics:
    """Create the IdP's metrics in a registry of their own (one per app, no global state)."""
    registry = CollectorRegistry()
    return Metrics(
        registry=registry,
        logins=Counter(
            "idp_logins_total",
            "Password logins by result (success, failure: wrong credentials, locked, disabled).",
            ["result"],
            registry=registry,
        ),
        tokens_issued=Counter(
            "idp_tokens_issued_total",
            "Token responses issued at /token, by OAuth grant type.",
            ["grant_type"],
            registry=registry,
        ),
        saml_assertions=Counter(
            "idp_saml_assertions_total",
            "SAML assertions issued to service providers.",
            registry=registry,
        ),
        logouts=Counter(
            "idp_logouts_total",
            "Login sessions ended, by reason (logout, rp_logout, saml_logout, expired, ...).",
            ["reason"],
            registry=registry,
        ),
        request_duration=Histogram(
            "idp_http_request_duration_seconds",
            "Time to answer a request, by Flask endpoint (never the path: bounded labels).",
            ["endpoint"],
            registry=registry,
        ),
    )


def get_metrics(app: Flask | None = None) -> Metrics:
    metrics: Metrics = (app or current_app).extensions["idp.metrics"]
    return metrics


def use_multiprocess_directory(app: Flask, path: str) -> None:
    """Make this process and its forks write the app's metrics under ``path`` (``idp serve``).

    prometheus_client picks its value class when it is imported, from the environment; the
    app (and its metrics) exist before ``idp serve`` knows it will fork, so both are redone.
    """
    os.environ[MULTIPROC_DIR] = path
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    app.extensions["idp.metrics"] = build_metrics()


def count_committed(metrics: Metrics, rows: Iterable[AuditEvent]) -> None:
    """Move the counters for the audit events just committed."""
    for row in rows:
        if row.event in LOGIN_RESULTS:
            metrics.logins.labels(result=LOGIN_RESULTS[row.event]).inc()
        elif row.event == "token_issued":
            grant_type = str((row.details or {}).get("grant_type") or "unknown")
            metrics.tokens_issued.labels(grant_type=grant_type).inc()
        elif row.event == "assertion_issued":
            metrics.saml_assertions.inc()
        elif row.event == "session_revoked":
            reason = str((row.details or {}).get("reason") or "unknown")
            metrics.logouts.labels(reason=reason).inc()


class _Value(Collector):
    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> Iterable[Metric]:
        return [self.family]


def expose(live_sessions: int | None) -> bytes:
    """Return every metric in the Prometheus text format (all workers' under ``idp serve``)."""
    path = os.environ.get(MULTIPROC_DIR)
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry = get_metrics().registry
    text = generate_latest(registry)
    if live_sessions is not None:
        gauge = CollectorRegistry()
        gauge.register(
            _Value(
                GaugeMetricFamily(
                    "idp_active_sessions",
                    "Login sessions live now (counted in the database: alike on every replica).",
                    value=live_sessions,
                )
            )
        )
        text += generate_latest(gauge)
    return text


def init_app(app: Flask) -> None:
    """Count committed audit events and time every request (call after the blueprints)."""
    app.extensions["idp.metrics"] = build_metrics()
    sessionmaker = db.get_database(app).sessionmaker
    # Listeners live as long as the sessionmaker's Session class, which the app holds: a strong
    # reference back to the app would keep every app a process builds (one per test) for good.
    app_ref = weakref.ref(app)

    @event.listens_for(sessionmaker, "after_flush")
    def _collect(session: Session, flush_context: Any) -> None:
        rows = [row for row in session.new if isinstance(row, AuditEvent)]
        if rows:
            session.info.setdefault(_PENDING, []).extend(rows)

    @event.listens_for(sessionmaker, "after_commit")
    def _count(session: Session) -> None:
        rows = session.info.pop(_PENDING, []) + session.info.pop(audit.INSERTED_KEY, [])
        owner = app_ref()
        if rows and owner is not None:
            count_committed(get_metrics(owner), rows)

    @event.listens_for(sessionmaker, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(_PENDING, None)
        session.info.pop(audit.INSERTED_KEY, None)

    @app.after_request
    def _observe(response: Response) -> Response:
        endpoint = request.endpoint or "none"
        get_metrics(app).request_duration.labels(endpoint=endpoint).observe(get_request_duration())
        return response
