"""Interop tests reuse the live ``idp serve`` of the end-to-end tests (no browser needed)."""

from __future__ import annotations

from tests.e2e.conftest import initialised_idp  # noqa: F401 (fixtures, found by name)
from tests.e2e.conftest import live_idp  # noqa: F401
