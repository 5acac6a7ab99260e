"""NameID formats: persistent (pairwise, stable, random), emailAddress, transient, unspecified."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import saml

UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
OTHER_SP = "https://other-sp.example.com/metadata"


def name_id(http: FlaskClient, settings: dict[str, Any], **options: Any) -> tuple[str, str]:
    """Sign in at the SP; return (NameID value, Format) as python3-saml read them."""
    response, request_id = saml.sso(http, settings, **options)
    sp = saml.process_response(settings, saml.read_form(response), request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    return sp.get_nameid(), sp.get_nameid_format()


def test_persistent_is_stable_pairwise_and_random(
    app: Flask, http: FlaskClient, auth: AuthActions, logged_in: TestUser
) -> None:
    first_sp = saml.sp_settings(http)
    saml.register(app, first_sp)
    other_sp = saml.sp_settings(
        http,
        entity_id=OTHER_SP,
        acs_url="https://other-sp.example.com/acs",
        slo_url="https://other-sp.example.com/slo",
    )
    saml.register(app, other_sp)
    value, name_id_format = name_id(http, first_sp)
    assert name_id_format == saml.PERSISTENT
    assert len(value) >= 40 and logged_in.email not in value and str(logged_in.id) != value
    other_value, _ = name_id(http, other_sp)
    assert other_value != value  # pairwise: two SPs cannot correlate the user
    auth.logout()
    auth.login(logged_in.email, logged_in.password)
    assert name_id(http, first_sp)[0] == value  # stable across logins
    assert saml.counts(app)["saml_persistent_id"] == 2


@pytest.mark.parametrize(
    ("listed", "expected"),
    [(saml.EMAIL, "email"), (UNSPECIFIED, "email"), (saml.TRANSIENT, "transient")],
    ids=["emailAddress", "unspecified", "transient"],
)
def test_the_first_format_the_sp_lists_is_used(
    app: Flask, http: FlaskClient, logged_in: TestUser, listed: str, expected: str
) -> None:
    settings = saml.sp_settings(http, name_id_format=listed)
    saml.register(app, settings)
    value, name_id_format = name_id(http, settings)
    assert name_id_format == listed
    if expected == "email":
        assert value == logged_in.email
    else:
        again, _ = name_id(http, settings)
        assert again != value and value.startswith("_") and len(value) >= 40
    assert saml.counts(app)["saml_persistent_id"] == 0


def test_the_setting_applies_unless_the_request_names_a_listed_format(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http, name_id_format=saml.EMAIL)
    saml.register(app, settings, name_id_format="persistent")
    value, name_id_format = name_id(http, settings, set_nameid_policy=False)
    assert name_id_format == saml.PERSISTENT and value != logged_in.email
    # NameIDPolicy asks for emailAddress, which the SP's metadata lists: honoured.
    assert name_id(http, settings) == (logged_in.email, saml.EMAIL)
