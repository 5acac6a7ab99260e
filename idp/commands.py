"""Top-level commands: ``idp init [--demo]`` and ``idp serve``."""

from __future__ import annotations

import contextvars
import os
from typing import Any

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from idp import db
from idp.keys.store import get_key_store
from idp.logs import ACCESS_LOG_FORMAT
from idp.logs import configure_logging
from idp.settings import get_settings


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


# Threads per worker (gunicorn's gthread worker): measured with `make bench`, docs/benchmarks.md.
THREADS = 4


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
    """Run the production server (gunicorn)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    get_key_store().verify_keys(db.now())  # a missing key file stops start-up, not /jwks
    configure_logging(get_settings(app))
    options = {
        "bind": f"{host}:{port}",
        "workers": workers or default_workers(),
        # Threads: a worker keeps serving while another request of it waits on the database
        # or on a slow client, and keeps connections alive (a sync worker closes each one).
        "worker_class": "gthread",
        "threads": THREADS,
        "keepalive": 5,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "proc_name": "idp",
        "post_fork": lambda server, worker: _post_fork(app),
    }
    # Serve from a fresh context: the CLI's app context (and its `g`) must not be shared by
    # every request, or one browser would inherit another's login.
    contextvars.Context().run(_Gunicorn(app, options).run)


def register(parent: click.Group) -> None:
    """Mount ``idp init`` and ``idp serve`` on the command line (``create_app`` calls this)."""
    parent.add_command(init_command)
    parent.add_command(serve_command)
