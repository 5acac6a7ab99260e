"""Fixtures of the SAML tests: one python3-saml SP registered from its own metadata."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import saml


@pytest.fixture
def sp(app: Flask, http: FlaskClient) -> dict[str, Any]:
    """The python3-saml settings of a registered SP (signed responses and assertions)."""
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    return settings
