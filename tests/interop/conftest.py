"""Interop tests reuse the ``idp init`` template of the end-to-end tests (no browser needed)."""

from __future__ import annotations

from tests.e2e.conftest import initialised_idp  # noqa: F401 (a fixture, found by name)
