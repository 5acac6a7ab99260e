"""Demo app settings: built-in defaults < environment < the mapping given to ``create_app``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

IDP_ISSUER = "http://127.0.0.1:5000"

# Every app reads the three base URLs, so the bar links follow a launcher that moves them.
APP_BASE_URLS = {
    "notes": ("Notes", "NOTES_BASE_URL", "http://127.0.0.1:5001"),
    "wiki": ("Wiki", "WIKI_BASE_URL", "http://127.0.0.1:5002"),
    "payroll": ("Payroll", "PAYROLL_BASE_URL", "http://127.0.0.1:5003"),
}


def load_settings(
    defaults: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return ``defaults`` overridden by same-named environment variables, then by ``config``."""
    values: dict[str, Any] = {"IDP_ISSUER": IDP_ISSUER}
    values.update({env: url for _, env, url in APP_BASE_URLS.values()})
    values.update(defaults)
    for name in list(values):
        if name in os.environ:
            values[name] = os.environ[name]
    if config:
        values.update(config)
    for name, value in values.items():
        if name.endswith(("_BASE_URL", "_ISSUER")) and isinstance(value, str):
            values[name] = value.rstrip("/")
    return values


def app_links(settings: Mapping[str, Any], current: str) -> list[dict[str, Any]]:
    """Return the bar: one link per demo app, the current one marked."""
    return [
        {"name": name, "title": title, "url": settings[env] + "/", "current": name == current}
        for name, (title, env, _) in APP_BASE_URLS.items()
    ]
