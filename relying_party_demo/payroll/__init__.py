"""Payroll: a SAML 2.0 service provider on python3-saml, with single logout (demo port 5003).

Start it with ``flask --app relying_party_demo.payroll:create_app run --port 5003`` or
``python -m relying_party_demo.payroll``; ``python -m relying_party_demo.payroll metadata``
prints its SP metadata (for ``idp sp add --metadata``). Pages: ``views.py``; SAML: ``saml.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from relying_party_demo.common.config import load_settings
from relying_party_demo.common.layout import make_app
from relying_party_demo.payroll import saml
from relying_party_demo.payroll.saml import sp_metadata
from relying_party_demo.payroll.views import bp

__all__ = ["create_app", "sp_metadata"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Return the Payroll app; ``config`` overrides the environment (PAYROLL_*, IDP_*)."""
    settings = load_settings(
        {"IDP_SAML_METADATA_URL": None, "PAYROLL_SP_DIR": None, "PAYROLL_PASSIVE_LOGIN": "1"},
        config,
    )
    app = make_app(
        __name__, "payroll", "Payroll", "Payslips and salaries, behind single sign-on.", settings
    )
    saml.init_app(
        app,
        base_url=settings["PAYROLL_BASE_URL"],
        sp_dir=Path(settings["PAYROLL_SP_DIR"] or Path(app.instance_path) / "payroll"),
        metadata_url=settings["IDP_SAML_METADATA_URL"] or settings["IDP_ISSUER"] + "/saml/metadata",
    )
    app.register_blueprint(bp)
    return app
