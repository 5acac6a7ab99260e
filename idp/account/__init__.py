"""The user's own pages under /account/: profile, password, sessions and apps."""

from __future__ import annotations
