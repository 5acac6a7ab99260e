"""``idp sp add --metadata FILE [--json]`` and ``idp sp list``.

What the metadata says is stored; bad metadata is one line on stderr, exit 1, nothing stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import ServiceProvider
from tests.conftest import TestUser
from tests.helpers import saml
from tests.helpers.cli import assert_one_error_line
from tests.helpers.cli import run

REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"


def write(tmp_path: Path, data: bytes, name: str = "sp.xml") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def stored(app: Flask) -> list[ServiceProvider]:
    with app.app_context():
        return list(db.get_session().scalars(select(ServiceProvider)))


def metadata_xml(
    *,
    entity_id: str = saml.SP_ENTITY_ID,
    acs: str = (
        '<md:AssertionConsumerService index="0" Location="https://sp.example.com/acs-a"'
        f' Binding="{saml.ACS_BINDING_POST}"/>'
        '<md:AssertionConsumerService index="1" isDefault="true"'
        f' Location="https://sp.example.com/acs-b" Binding="{saml.ACS_BINDING_POST}"/>'
    ),
    doctype: str = "",
    extra: str = "",
) -> bytes:
    cert = "".join(line for line in saml.sp_key_pair()[1].splitlines() if "-----" not in line)
    return f"""<?xml version="1.0"?>{doctype}
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"
      AuthnRequestsSigned="true" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="{REDIRECT}" Location="https://sp.example.com/slo"
        ResponseLocation="https://sp.example.com/slo-done"/>
    <md:NameIDFormat>{saml.EMAIL}</md:NameIDFormat>
    <md:NameIDFormat>{saml.PERSISTENT}</md:NameIDFormat>
    {acs}{extra}
  </md:SPSSODescriptor>
  <md:Organization>
    <md:OrganizationName xml:lang="en">payroll</md:OrganizationName>
    <md:OrganizationDisplayName xml:lang="en">Payroll</md:OrganizationDisplayName>
    <md:OrganizationURL xml:lang="en">https://sp.example.com/</md:OrganizationURL>
  </md:Organization>
</md:EntityDescriptor>""".encode()


def test_add_reads_everything_the_metadata_says(app: Flask, tmp_path: Path) -> None:
    result = run(app, "sp", "add", "--metadata", write(tmp_path, metadata_xml()), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"entity_id": saml.SP_ENTITY_ID}
    [sp] = stored(app)
    assert sp.name == "Payroll"
    assert [(e["location"], e["index"], e["is_default"]) for e in sp.acs_endpoints] == [
        ("https://sp.example.com/acs-a", 0, None),
        ("https://sp.example.com/acs-b", 1, True),
    ]
    assert sp.slo_endpoints == [
        {
            "binding": REDIRECT,
            "location": "https://sp.example.com/slo",
            "response_location": "https://sp.example.com/slo-done",
        }
    ]
    assert sp.signing_certificates == [saml.sp_key_pair()[1]]
    assert sp.encryption_certificates == [saml.sp_key_pair()[1]]
    assert sp.authn_requests_signed and sp.want_assertions_signed
    assert sp.name_id_format == saml.EMAIL  # the first one the metadata lists
    assert sp.sign_response and sp.sign_assertion and sp.encrypt_assertion
    assert sp.attributes is None and sp.relay_states == []
    listing = run(app, "sp", "list", "--json")
    assert listing.exit_code == 0
    rows = json.loads(listing.stdout)
    assert [(row["entity_id"], row["name"]) for row in rows] == [(saml.SP_ENTITY_ID, "Payroll")]
    assert run(app, "sp", "add", "--metadata", write(tmp_path, metadata_xml())).exit_code == 1
    text = run(app, "sp", "list")
    assert text.stdout.strip() == f"{saml.SP_ENTITY_ID}\tPayroll"


def test_add_takes_the_per_sp_settings(app: Flask, tmp_path: Path) -> None:
    result = run(
        app,
        "sp",
        "add",
        "--metadata",
        write(tmp_path, metadata_xml()),
        "--name",
        "Pay",
        "--name-id-format",
        "transient",
        "--attribute",
        "mail",
        "--attribute",
        "isMemberOf",
        "--no-sign-response",
        "--no-encrypt-assertion",
        "--relay-state",
        "/reports",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"entity_id: {saml.SP_ENTITY_ID}"
    [sp] = stored(app)
    assert (sp.name, sp.name_id_format) == ("Pay", saml.TRANSIENT)
    assert sp.attributes == ["email", "groups"]
    assert not sp.sign_response and sp.sign_assertion and not sp.encrypt_assertion
    assert sp.relay_states == ["/reports"]


def test_replace_updates_an_existing_sp(app: Flask, tmp_path: Path) -> None:
    path = write(tmp_path, metadata_xml())
    assert run(app, "sp", "add", "--metadata", path).exit_code == 0
    duplicate = run(app, "sp", "add", "--metadata", path)
    assert_one_error_line(duplicate, "already registered")
    one_acs = metadata_xml(
        acs='<md:AssertionConsumerService index="3" Location="https://sp.example.com/new"'
        f' Binding="{saml.ACS_BINDING_POST}"/>'
    )
    result = run(app, "sp", "add", "--metadata", write(tmp_path, one_acs), "--replace")
    assert result.exit_code == 0, result.output
    [sp] = stored(app)
    assert [e["location"] for e in sp.acs_endpoints] == ["https://sp.example.com/new"]


@pytest.mark.parametrize(
    ("data", "options", "message"),
    [
        (
            metadata_xml(doctype='<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'),
            [],
            "declares a DTD",
        ),
        (b"<md:EntityDescriptor", [], "not well-formed"),
        (
            metadata_xml(
                acs='<md:AssertionConsumerService index="0" Location="http://sp.example.com/acs"'
                f' Binding="{saml.ACS_BINDING_POST}"/>'
            ),
            [],
            "https URL",
        ),
        (
            metadata_xml(
                acs='<md:AssertionConsumerService index="0" Location="https://sp.example.com/a"'
                ' Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"/>'
            ),
            [],
            "no AssertionConsumerService with HTTP-POST",
        ),
        (metadata_xml(), ["--name-id-format", "kerberos"], "unsupported NameID format"),
        (metadata_xml(), ["--attribute", "password"], "unknown attribute"),
        (
            metadata_xml(),
            ["--name-id-format", "emailAddress", "--attribute", "displayName"],
            "release mail too",
        ),
        (metadata_xml(), ["--relay-state", "x" * 81], "80 bytes"),
        (
            metadata_xml().replace(b'WantAssertionsSigned="true"', b""),
            ["--no-sign-response", "--no-sign-assertion"],
            "must be signed",
        ),
        (
            b'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">'
            + metadata_xml().split(b"?>", 1)[1]
            + metadata_xml(entity_id="https://second.example.com/sp").split(b"?>", 1)[1]
            + b"</md:EntitiesDescriptor>",
            [],
            "not an aggregate",
        ),
        (
            metadata_xml().replace(b'entityID="', b'validUntil="2001-01-01T00:00:00Z" entityID="'),
            [],
            "expired",
        ),
        (
            metadata_xml(extra="").replace(b"<ds:X509Certificate>", b"<ds:X509Certificate>AAAA", 1),
            [],
            "no valid X.509 certificate",
        ),
        (
            metadata_xml().replace(b"urn:oasis:names:tc:SAML:2.0:protocol", b"urn:example:v1"),
            [],
            "SPSSODescriptor",
        ),
    ],
    ids=[
        "xxe",
        "malformed",
        "plain-http",
        "no-post-acs",
        "format",
        "attribute",
        "email-format-without-mail",
        "relay-state",
        "unsigned",
        "aggregate",
        "expired",
        "certificate",
        "no-saml2-sp",
    ],
)
def test_bad_metadata_or_settings_store_nothing(
    app: Flask, tmp_path: Path, data: bytes, options: list[str], message: str
) -> None:
    result = run(app, "sp", "add", "--metadata", write(tmp_path, data), *options)
    assert_one_error_line(result, message)
    assert stored(app) == []


def test_a_missing_file_is_one_line(app: Flask, tmp_path: Path) -> None:
    assert_one_error_line(
        run(app, "sp", "add", "--metadata", str(tmp_path / "nope.xml")), "cannot read"
    )


def test_loopback_http_is_allowed_for_demo_apps(app: Flask, tmp_path: Path) -> None:
    data = metadata_xml(
        acs='<md:AssertionConsumerService index="0" Location="http://127.0.0.1:5003/acs"'
        f' Binding="{saml.ACS_BINDING_POST}"/>'
    )
    assert run(app, "sp", "add", "--metadata", write(tmp_path, data)).exit_code == 0


def test_acs_is_chosen_by_index_url_or_default(
    app: Flask, http: FlaskClient, tmp_path: Path, logged_in: TestUser
) -> None:
    run(app, "sp", "add", "--metadata", write(tmp_path, metadata_xml()), "--no-encrypt-assertion")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"acs_url": None}, "https://sp.example.com/acs-b"),  # isDefault="true"
        ({"acs_url": None, "AssertionConsumerServiceIndex": "0"}, "https://sp.example.com/acs-a"),
        ({"acs_url": "https://sp.example.com/acs-a"}, "https://sp.example.com/acs-a"),
    ]
    for options, expected in cases:
        xml = saml.sign_xml(saml.authn_request(**options))
        form = saml.read_form(http.post("/saml/sso", data=saml.post_fields(xml)))
        assert form.action == expected
        assert form.xml().get("Destination") == expected


def test_released_attributes_follow_the_setting(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    settings = saml.sp_settings(http)
    saml.register(app, settings, attributes=["mail"])
    response, request_id = saml.sso(http, settings)
    sp = saml.process_response(settings, saml.read_form(response), request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.get_attributes() == {"urn:oid:0.9.2342.19200300.100.1.3": [logged_in.email]}
