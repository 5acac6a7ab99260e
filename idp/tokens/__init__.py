"""Personal access tokens: format, storage, policy, the ``idp token`` CLI."""

from __future__ import annotations
