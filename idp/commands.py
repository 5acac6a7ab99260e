"""Top-level commands: ``idp init [--demo]`` and ``idp serve``."""

from __future__ import annotations

import contextvars
import os
import shutil
import tempfile
from typing import Any

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from idp import db
from idp import metrics
from idp.keys.store import get_key_store
from idp.logs import StderrHandler
from idp.logs import configure_logging
from idp.outbox import get_outbox
from idp.settings import get_settings
from idp.tokens.usage import flush_usage


@click.command("init")
@with_appcontext
@click.option("--demo", is_flag=True, help="Also seed the demo users, clients and SPs.")
def init_command(demo: bool) -> None:
    """Create or upgrade the database and create signing keys if missing (safe to rerun)."""
    database = db.get_database()
    keys = get_key_store()
    # An unusable keys_dir or a key file gone missing is found before the database is touched.
    keys.verify_keys(db.now())
    db.create_sqlite_file(database.engine)
    before = db.current_revision(database.engine)
    db.upgrade_database(database.engine)
    after = db.current_revision(database.engine)
    if before == after:
        click.echo(f"Database is up to date (revision {after}).")
    else:
        click.echo(f"Database upgraded from {before or 'empty'} to revision {after}.")
    created = keys.ensure_keys(db.now())
    for key in created:
        click.echo(f"Created {key.kind} key {key.kid}.")
    if not created:
        click.echo("Signing keys are present.")
    if demo:
        from idp.demo import seed_demo

        for line in seed_demo():
            click.echo(line)


# How `idp serve` runs gunicorn, chosen by measurement: bench/serve_workers.py on 2 cores
# (busy with other work, so compare rows), PostgreSQL, 16 clients each looping over discovery
# then a client_credentials token, then discovery timed while 6 clients trickle an upload:
#   class    workers threads  req/s  p50 ms  p99 ms | discovery in 3 s beside slow uploads
#   sync           3       1     29     597    1167 |    1 (stuck until they finish)
#   sync           5       1     29     564    1401 |    1 (stuck)
#   sync           8       1     38     425    1072 |  226, p50 10.5 ms
#   gthread        2       4     45     346     893 |  669, p50 1.8 ms
#   gthread        5       4     53     225     954 | 1453, p50 1.4 ms
#   gthread        5       8     50     285     989 |  957, p50 1.4 ms
# Throughput is CPU-bound on a shared 2-core machine, so the rows are close (within its
# noise); what decides is that a sync worker is held by one slow client for the whole upload, and
# five of them stop the IdP. gthread with the default 2 x cores + 1 workers and 4 threads
# each answered best on both counts. GUNICORN_CMD_ARGS overrides any of it.
WORKER_CLASS = "gthread"
THREADS = 4
# A request still running after this long is killed with its worker (a stuck database);
# in-flight requests get as long again to finish after SIGTERM before the workers stop.
TIMEOUT = 30
GRACEFUL_TIMEOUT = 30
KEEPALIVE = 5


def default_workers() -> int:
    """Return gunicorn's recommended 2 x cores + 1, capped at 8."""
    return min(2 * (os.cpu_count() or 1) + 1, 8)


class _Gunicorn:
    """A gunicorn application serving an already-built Flask app."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        from gunicorn.app.base import BaseApplication

        outer = self

        class Application(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in options.items():
                    self.cfg.set(key, value)
                # gunicorn 25+ opens a control socket under $HOME by default: nothing uses it.
                # https://github.com/benoitc/gunicorn/blob/27.0.1/gunicorn/config.py#L3368-L3376
                if "control_socket_disable" in self.cfg.settings:
                    self.cfg.set("control_socket_disable", True)
                # GUNICORN_CMD_ARGS tunes anything above, as with the gunicorn command.
                tuned = self.cfg.parser().parse_args(self.cfg.get_cmd_args_from_env())
                for key, value in vars(tuned).items():
                    if value is not None and key != "args":
                        self.cfg.set(key.lower(), value)

            def load(self) -> Flask:
                return outer.app

        self.app = app
        self.application = Application()

    def run(self) -> None:
        self.application.run()


def _post_fork(app: Flask) -> None:
    # Connections must not cross fork(): each worker opens its own pool, and runs its own
    # sweeper (expired sessions, back-channel logout retries).
    from idp.sessions.logout import start_maintenance_thread

    db.get_database(app).engine.dispose(close=False)
    start_maintenance_thread(app)


def _worker_exit(app: Flask) -> None:
    # A stopping worker writes its waiting usage counts and sends the notices it has queued
    # (within the outbox's deadline).
    with app.app_context():
        flush_usage()
    get_outbox(app).close()


def _logger_class(log_format: str) -> type:
    """Return a gunicorn logger writing its own lines (start, stop, worker timeouts) as ours."""
    from gunicorn.glogging import Logger

    class IdpLogger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for handler in list(self.error_log.handlers):
                self.error_log.removeHandler(handler)
            self.error_log.addHandler(StderrHandler(log_format))

    return IdpLogger


def gunicorn_options(
    app: Flask, *, host: str, port: int, workers: int | None, metrics_dir: str
) -> dict[str, Any]:
    """Return the gunicorn settings of ``idp serve``."""
    from prometheus_client.multiprocess import mark_process_dead

    def child_exit(server: Any, worker: Any) -> None:
        mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]

    return {
        "bind": f"{host}:{port}",
        "workers": workers or default_workers(),
        "worker_class": WORKER_CLASS,
        "threads": THREADS,
        "timeout": TIMEOUT,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE,
        # One line per request comes from the app (idp.access: with its request ID and
        # endpoint, never a query string), so gunicorn's access log is off.
        "accesslog": None,
        "errorlog": "-",
        "logger_class": _logger_class(get_settings(app).log_format),
        # Forwarded headers are the app's business (IDP_TRUSTED_PROXIES through ProxyFix):
        # gunicorn would otherwise believe X-Forwarded-Proto from any loopback peer.
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        "proc_name": "idp",
        "post_fork": lambda server, worker: _post_fork(app),
        "child_exit": child_exit,
        "worker_exit": lambda server, worker: _worker_exit(app),
    }


@click.command("serve")
@with_appcontext
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: 2 x cores + 1, at most 8).",
)
def serve_command(host: str, port: int, workers: int | None) -> None:
    """Run the production server (gunicorn); SIGTERM lets requests in flight finish."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    get_key_store().verify_keys(db.now())  # a missing key file stops start-up, not /jwks
    configure_logging(get_settings(app))
    # Every worker writes its metrics here; a scrape of any worker sums them. Private (0700)
    # and fresh: counts left by an earlier run would be added to this one's.
    metrics_dir = tempfile.mkdtemp(prefix="idp-metrics-")
    owner = os.getpid()
    try:
        metrics.use_multiprocess_directory(app, metrics_dir)
        options = gunicorn_options(
            app, host=host, port=port, workers=workers, metrics_dir=metrics_dir
        )
        # Serve from a fresh context: the CLI's app context (and its `g`) must not be shared
        # by every request, or one browser would inherit another's login.
        contextvars.Context().run(_Gunicorn(app, options).run)
    finally:
        if os.getpid() == owner:  # a worker leaving through here must not remove it
            shutil.rmtree(metrics_dir, ignore_errors=True)


def register(parent: click.Group) -> None:
    """Mount ``idp init`` and ``idp serve`` on the command line (``create_app`` calls this)."""
    parent.add_command(init_command)
    parent.add_command(serve_command)
