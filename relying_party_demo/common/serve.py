"""``python -m relying_party_demo.<app>``: serve one demo app on its base URL's port (gunicorn)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from gunicorn.app.base import BaseApplication

# The path without its query string: a callback's code and state stay out of the log.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s'


class Server(BaseApplication):
    """gunicorn serving one already-built app: one process (sessions live in its memory)."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.app = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        # gunicorn 25+ opens a control socket under $HOME by default: the demo needs none.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        return self.app


def serve(create_app: Callable[[], Flask], base_url_setting: str) -> None:
    """Build the app and serve it on the host and port of its base URL."""
    app = create_app()
    address = urlsplit(app.config[base_url_setting])
    port = address.port or (443 if address.scheme == "https" else 80)
    options = {
        "bind": f"{address.hostname or '127.0.0.1'}:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": 8,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": "warning",
        "graceful_timeout": 5,  # the launcher waits 15 s before it kills
        "proc_name": app.name,
    }
    Server(app, options).run()
