"""Interop tests reuse the live ``idp serve`` of the end-to-end tests (no browser needed)."""

from __future__ import annotations

from tests.e2e.conftest import live_idp  # noqa: F401 (a fixture, found by name)
