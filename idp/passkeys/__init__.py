"""Passkeys (WebAuthn Level 3): registration, passwordless login and a second factor."""

from __future__ import annotations
