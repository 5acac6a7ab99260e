"""The admin REST API (and later the console): HTTP over the services of each package."""

from __future__ import annotations
