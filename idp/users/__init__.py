"""User accounts: creation, listing, disabling, password hashing."""

from __future__ import annotations
