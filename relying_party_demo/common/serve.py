"""``python -m relying_party_demo.<app>``: serve one demo app on its base URL's port."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask
from werkzeug.serving import run_simple


def serve(create_app: Callable[[], Flask], base_url_setting: str) -> None:
    """Build the app and serve it, threaded, on the host and port of its base URL."""
    app = create_app()
    address = urlsplit(app.config[base_url_setting])
    port = address.port or (443 if address.scheme == "https" else 80)
    run_simple(address.hostname or "127.0.0.1", port, app, threaded=True)
