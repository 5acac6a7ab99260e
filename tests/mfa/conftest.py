"""Fixtures of the second-factor tests, borrowed from the SAML, admin and lockout tests."""

from __future__ import annotations

from tests.admin.conftest import admin
from tests.admin.conftest import robot
from tests.admin.conftest import robot_token
from tests.saml.conftest import sp
from tests.sessions.test_lockout import counters

__all__ = ["admin", "counters", "robot", "robot_token", "sp"]
