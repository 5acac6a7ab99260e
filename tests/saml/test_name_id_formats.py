"""NameID formats: persistent (pairwise, stable, random), emailAddress, transient, unspecified."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

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


# -- what mod_auth_mellon sends by default ------------------------------------------------------

MELLON = "https://mellon.example.com/mellon/metadata"
MELLON_ACS = "https://mellon.example.com/mellon/postResponse"
MELLON_SLO = "https://mellon.example.com/mellon/logout"
# mellon_create_metadata.sh's output: no NameIDFormat, signed requests, an encryption key.
MELLON_METADATA = """<EntityDescriptor entityID="{entity_id}"
    xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
    <KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
    <SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
      Location="{slo}"/>
    <AssertionConsumerService index="0" isDefault="true"
      Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}"/>
    <AssertionConsumerService index="1"
      Binding="urn:oasis:names:tc:SAML:2.0:bindings:PAOS" Location="{acs}/paos"/>
  </SPSSODescriptor>
</EntityDescriptor>"""


@pytest.fixture
def mellon(app: Flask, http: FlaskClient) -> dict[str, Any]:
    """python3-saml settings standing in for mod_auth_mellon, registered from mellon metadata."""
    from idp.saml.registration import register_sp_metadata

    _, cert_pem = saml.sp_key_pair("mellon")
    body = "".join(line for line in cert_pem.splitlines() if "CERTIFICATE" not in line)
    metadata = MELLON_METADATA.format(entity_id=MELLON, cert=body, slo=MELLON_SLO, acs=MELLON_ACS)
    with app.app_context():
        register_sp_metadata(metadata.encode())
    return saml.sp_settings(
        http,
        entity_id=MELLON,
        acs_url=MELLON_ACS,
        slo_url=MELLON_SLO,
        name_id_format=saml.TRANSIENT,
        key="mellon",
    )


def mellon_sso(http: FlaskClient, settings: dict[str, Any]) -> Any:
    """Send mellon's default AuthnRequest (lasso's shape, signed Redirect); return the SP."""
    request = saml.authn_request(
        issuer=MELLON,
        acs_url=None,
        Consent="urn:oasis:names:tc:SAML:2.0:consent:current-implicit",
        ForceAuthn="false",
        IsPassive="false",
        AssertionConsumerServiceURL=MELLON_ACS,
    )
    etree.SubElement(
        request, f"{{{saml.NS['samlp']}}}NameIDPolicy", Format=saml.TRANSIENT, AllowCreate="true"
    )
    query = saml.redirect_query(etree.tostring(request), sign_key="mellon")
    form = saml.read_form(http.get(f"/saml/sso?{query}"))
    sp = saml.process_response(settings, form, request.get("ID"))
    assert sp.get_errors() == [], sp.get_last_error_reason()
    return sp


def test_mellons_default_request_gets_a_fresh_transient_name_id(
    app: Flask, http: FlaskClient, auth: AuthActions, logged_in: TestUser, mellon: dict[str, Any]
) -> None:
    first = mellon_sso(http, mellon)
    assert first.get_nameid_format() == saml.TRANSIENT
    second = mellon_sso(http, mellon)
    auth.logout()
    auth.login(logged_in.email, logged_in.password)
    third = mellon_sso(http, mellon)
    values = {sp.get_nameid() for sp in (first, second, third)}
    assert len(values) == 3  # one opaque value per assertion: nothing links two logins
    for value in values:
        assert len(value) >= 32 and logged_in.email not in value and str(logged_in.id) != value
    assert saml.counts(app)["saml_persistent_id"] == 0


def test_single_logout_finds_the_session_by_transient_name_id(
    app: Flask, http: FlaskClient, logged_in: TestUser, mellon: dict[str, Any]
) -> None:
    earlier = mellon_sso(http, mellon)
    session = mellon_sso(http, mellon)  # a second assertion: a new NameID, same SessionIndex
    assert session.get_session_index() == earlier.get_session_index()
    # The SP may still hold the earlier assertion's NameID: its SessionIndex names the session.
    path, request_id = saml.logout_url(mellon, earlier)
    response = http.get(path)
    assert response.status_code == 302
    answer = saml.sp_auth(mellon, response.headers["Location"])
    answer.process_slo(request_id=request_id)
    assert answer.get_errors() == [], answer.get_last_error_reason()
    event = saml.audit_events(app, "saml_logout")[-1]
    assert event.details["sessions_ended"] == 1
    assert http.get("/saml/sso/init", query_string={"sp": MELLON}).status_code == 302


def test_a_transient_name_id_never_names_another_sps_session(
    app: Flask, http: FlaskClient, logged_in: TestUser, mellon: dict[str, Any]
) -> None:
    other = saml.sp_settings(http, entity_id=OTHER_SP, name_id_format=saml.TRANSIENT, key="o")
    saml.register(app, other)
    mine = mellon_sso(http, mellon)
    theirs = saml.signed_in(http, other)
    # The other SP signs a LogoutRequest naming mellon's NameID and SessionIndex: no match.
    path, _ = saml.logout_url(other, mine)
    response = http.get(path)
    assert response.status_code == 302
    assert saml.audit_events(app, "saml_logout")[-1].details["sessions_ended"] == 0
    assert theirs.get_nameid() != mine.get_nameid()
    assert http.get("/saml/sso/init", query_string={"sp": MELLON}).status_code == 200


# -- NameIDPolicy against the registration: no attribute-release bypass -------------------------

INVALID_NAME_ID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"


def refused(app: Flask, http: FlaskClient, settings: dict[str, Any], **options: Any) -> None:
    """Assert the SP gets a signed InvalidNameIDPolicy and nothing is stored."""
    before = saml.counts(app)
    response, request_id = saml.sso(http, settings, **options)
    form = saml.read_form(response)
    codes = form.xml().xpath("//samlp:StatusCode/@Value", namespaces=saml.NS)
    assert codes == ["urn:oasis:names:tc:SAML:2.0:status:Requester", INVALID_NAME_ID_POLICY]
    assert form.xml().find(".//{*}Assertion") is None
    after = saml.counts(app)
    assert after.pop("replay_entry") == before.pop("replay_entry") + 1  # the request ID, spent
    assert after == before


def test_email_name_id_needs_mail_released(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # The SP's metadata lists emailAddress; the operator chose persistent and displayName only.
    settings = saml.sp_settings(http, name_id_format=saml.EMAIL)
    saml.register(app, settings, name_id_format="persistent", attributes=["displayName"])
    refused(app, http, settings)
    value, name_id_format = name_id(http, settings, set_nameid_policy=False)
    assert name_id_format == saml.PERSISTENT and logged_in.email not in value


def test_the_default_format_never_reveals_mail_that_is_not_released(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    from idp.errors import InvalidInputError

    settings = saml.sp_settings(http, name_id_format=saml.EMAIL)
    with pytest.raises(InvalidInputError, match="mail"):
        saml.register(app, settings, name_id_format="emailAddress", attributes=["displayName"])
    # Unset, the SP's first listed format would be emailAddress: without mail, persistent.
    saml.register(app, settings, attributes=["displayName"])
    value, name_id_format = name_id(http, settings, set_nameid_policy=False)
    assert name_id_format == saml.PERSISTENT and logged_in.email not in value


@pytest.mark.parametrize("listed", [saml.EMAIL, UNSPECIFIED])
def test_a_stored_email_setting_without_mail_falls_back_to_persistent(
    app: Flask, http: FlaskClient, logged_in: TestUser, listed: str
) -> None:
    from idp import db
    from idp.saml import storage

    settings = saml.sp_settings(http, name_id_format=listed)
    saml.register(app, settings)
    with app.app_context():  # a registration from before mail had to be released
        sp = storage.get_service_provider(saml.SP_ENTITY_ID)
        assert sp is not None and sp.name_id_format == listed
        sp.attributes = ["name"]
        db.get_session().commit()
    value, name_id_format = name_id(http, settings, set_nameid_policy=False)
    assert name_id_format == saml.PERSISTENT and logged_in.email not in value


def test_requested_formats_the_idp_can_issue_are_honoured(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # The SP's metadata lists only persistent, yet it may ask for any format the IdP issues.
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    for requested in (saml.TRANSIENT, saml.EMAIL, saml.PERSISTENT):
        settings["sp"]["NameIDFormat"] = requested
        value, name_id_format = name_id(http, settings)
        assert name_id_format == requested
        assert (value == logged_in.email) is (requested == saml.EMAIL)
    settings["sp"]["NameIDFormat"] = UNSPECIFIED  # unspecified: the SP's setting
    assert name_id(http, settings)[1] == saml.PERSISTENT


@pytest.mark.parametrize(
    "requested",
    [
        "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
        "urn:example:made-up",
    ],
)
def test_formats_the_idp_cannot_issue_are_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser, requested: str
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings)
    settings["sp"]["NameIDFormat"] = requested
    refused(app, http, settings)
