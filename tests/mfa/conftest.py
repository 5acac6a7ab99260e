"""Fixtures of the second-factor tests: the SAML tests' SP, the admin tests' admin and robot."""

from __future__ import annotations

from tests.admin.conftest import admin
from tests.admin.conftest import robot
from tests.admin.conftest import robot_token
from tests.saml.conftest import sp

__all__ = ["admin", "robot", "robot_token", "sp"]
