"""The shared login: one session per browser login, whatever protocol asked for it."""

from __future__ import annotations
