"""The admin console under /admin/ (admins only): ``base`` holds the blueprint and its rules."""

from __future__ import annotations

from idp.admin.views import pages  # noqa: F401 (each module registers its pages)
from idp.admin.views import tokens  # noqa: F401
from idp.admin.views.base import bp

__all__ = ["bp"]
