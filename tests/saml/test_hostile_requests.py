"""Hostile AuthnRequests: each refused with an HTML 400 at the IdP and nothing stored."""

from __future__ import annotations

import base64
import zlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from tests.conftest import TestUser
from tests.helpers import saml

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"
    xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_xxe" Version="2.0"
    IssueInstant="%s"><saml:Issuer>&xxe;</saml:Issuer></samlp:AuthnRequest>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"
    xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_lol" Version="2.0"
    IssueInstant="%s"><saml:Issuer>&lol9;</saml:Issuer></samlp:AuthnRequest>"""


def assert_refused_and_audited(
    app: Flask, response: Any, before: dict[str, int], message: str
) -> None:
    """Refused (no form at all, nothing stored), and the refusal audited with its reason."""
    page = saml.assert_refused(app, response, before, message)
    assert "<form" not in page
    refusals = saml.audit_events(app, "saml_request_refused")
    assert refusals and message in refusals[-1].details["reason"]


def both_bindings(http: FlaskClient, xml: bytes, relay_state: str | None = None) -> list[Any]:
    return [
        http.get(f"/saml/sso?{saml.redirect_query(xml, relay_state=relay_state)}"),
        http.post("/saml/sso", data=saml.post_fields(xml, relay_state)),
    ]


@pytest.mark.parametrize("document", [XXE, BILLION_LAUGHS], ids=["xxe", "billion-laughs"])
def test_dtd_and_entities_are_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser, document: bytes
) -> None:
    before = saml.counts(app)
    xml = document % saml.now_instant().encode()
    for response in both_bindings(http, xml):
        assert_refused_and_audited(app, response, before, "declares a DTD")
        assert b"root:" not in response.data


def test_a_dtd_hidden_in_utf16_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    text = (
        (XXE % saml.now_instant().encode())
        .decode()
        .replace('version="1.0"?', 'version="1.0" encoding="UTF-16"?')
    )
    response = http.post("/saml/sso", data=saml.post_fields(text.encode("utf-16")))
    assert_refused_and_audited(app, response, before, "declares a DTD")


def test_a_deflate_bomb_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    request = etree.tostring(saml.authn_request())
    padding = b"<!--" + b" " * (20 * 1024 * 1024) + b"-->"
    bomb = request.replace(b"<saml:Issuer", padding + b"<saml:Issuer", 1)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(bomb) + compressor.flush()
    assert len(deflated) < 64 * 1024  # small on the wire, 20 MiB once inflated
    query = "SAMLRequest=" + base64.b64encode(deflated).decode().replace("+", "%2B").replace(
        "/", "%2F"
    ).replace("=", "%3D")
    assert_refused_and_audited(app, http.get(f"/saml/sso?{query}"), before, "too large")


def test_an_oversized_post_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    request = etree.tostring(saml.authn_request())
    big = request.replace(b"<saml:Issuer", b"<!--" + b" " * (300 * 1024) + b"--><saml:Issuer", 1)
    assert_refused_and_audited(
        app, http.post("/saml/sso", data=saml.post_fields(big)), before, "too large"
    )


def test_an_unregistered_issuer_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request(issuer="https://evil.example.com/metadata"))
    for response in both_bindings(http, xml):
        assert_refused_and_audited(app, response, before, "not registered")


def test_an_acs_url_not_in_the_metadata_gets_no_post(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request(acs_url="https://evil.example.com/acs"))
    for response in both_bindings(http, xml):
        assert_refused_and_audited(app, response, before, "not in the SP's metadata")
        assert b"evil.example.com" not in response.data


def test_an_acs_index_not_in_the_metadata_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request(acs_url=None, AssertionConsumerServiceIndex="7"))
    assert_refused_and_audited(
        app, http.post("/saml/sso", data=saml.post_fields(xml)), before, "Index"
    )


def test_a_replayed_request_id_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    path, _ = saml.login_url(sp)
    first = http.get(path)
    assert saml.read_form(first).fields["SAMLResponse"]
    after_first = saml.counts(app)
    assert_refused_and_audited(app, http.get(path), after_first, "already used")


def test_a_replay_through_the_other_binding_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    xml = etree.tostring(saml.authn_request(request_id="_replayed-once"))
    assert saml.read_form(http.post("/saml/sso", data=saml.post_fields(xml)))
    after_first = saml.counts(app)
    response = http.get(f"/saml/sso?{saml.redirect_query(xml)}")
    assert_refused_and_audited(app, response, after_first, "already used")


def test_a_relay_state_over_80_bytes_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request())
    for response in both_bindings(http, xml, relay_state="r" * 81):
        assert_refused_and_audited(app, response, before, "longer than 80 bytes")
    # 80 bytes exactly is fine (and multi-byte characters count as bytes).
    assert_refused_and_audited(
        app, both_bindings(http, xml, relay_state="é" * 41)[1], before, "longer than 80 bytes"
    )
    form = saml.read_form(http.post("/saml/sso", data=saml.post_fields(xml, "r" * 80)))
    assert form.fields["RelayState"] == "r" * 80


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"SAMLRequest": "%%% not base64 %%%"}, "not valid base64"),
        ({"SAMLRequest": base64.b64encode(b"<not-xml").decode()}, "not well-formed XML"),
        (
            {"SAMLRequest": base64.b64encode(b"<a/>").decode()},
            "not valid against the SAML 2.0 schema",
        ),
        ({}, "exactly one SAMLRequest"),
    ],
    ids=["base64", "xml", "schema", "missing"],
)
def test_malformed_posts_are_refused(
    app: Flask,
    http: FlaskClient,
    sp: dict[str, Any],
    logged_in: TestUser,
    fields: dict[str, str],
    message: str,
) -> None:
    before = saml.counts(app)
    assert_refused_and_audited(app, http.post("/saml/sso", data=fields), before, message)


def test_redirect_data_that_is_not_deflate_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    raw = base64.b64encode(etree.tostring(saml.authn_request())).decode()
    response = http.get("/saml/sso", query_string={"SAMLRequest": raw})
    assert_refused_and_audited(app, response, before, "not valid DEFLATE data")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"destination": "https://other-idp.example.com/sso"}, "another destination"),
        ({"issue_instant": "2001-01-01T00:00:00Z"}, "too old"),
        ({"issue_instant": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"Version": "1.1"}, "Only SAML 2.0"),
        # Valid xs:dateTime values that fall outside Python's datetime once moved to UTC.
        ({"issue_instant": "9999-12-31T23:59:59-14:00"}, "out of range"),
        ({"issue_instant": "0001-01-01T00:00:00+14:00"}, "out of range"),
    ],
    ids=["destination", "stale", "future", "version", "after-9999", "before-0001"],
)
def test_misaddressed_or_stale_requests_are_refused(
    app: Flask,
    http: FlaskClient,
    sp: dict[str, Any],
    logged_in: TestUser,
    options: dict[str, str],
    message: str,
) -> None:
    before = saml.counts(app)
    xml = etree.tostring(saml.authn_request(**options))
    assert_refused_and_audited(
        app, http.post("/saml/sso", data=saml.post_fields(xml)), before, message
    )


def _query(xml: bytes, **extra: str) -> str:
    query = saml.redirect_query(xml)
    return query + "".join(f"&{name}={value}" for name, value in extra.items())


def test_protocol_violations_are_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    request = etree.tostring(saml.authn_request())
    signed = saml.sign_xml(saml.authn_request())
    logout = etree.tostring(saml.logout_request(name_id="someone"))
    index_and_url = etree.tostring(saml.authn_request(AssertionConsumerServiceIndex="0"))
    cases: list[tuple[Any, str]] = [
        (lambda: http.get(f"/saml/sso?{saml.redirect_query(request)}&SAMLRequest=x"), "repeated"),
        (lambda: http.get(f"/saml/sso?{_query(request, Signature='AAAA')}"), "has no SigAlg"),
        (lambda: http.get(f"/saml/sso?{saml.redirect_query(signed)}"), "must not embed"),
        (
            lambda: http.get(f"/saml/sso?{saml.redirect_query(request, field='SAMLResponse')}"),
            "Send an AuthnRequest",
        ),
        (lambda: http.post("/saml/sso", data={"SAMLRequest": ["a", "b"]}), "is repeated"),
        (
            lambda: http.post("/saml/sso", data=saml.post_fields(index_and_url)),
            "excludes the URL",
        ),
        (lambda: http.post("/saml/sso", data=saml.post_fields(logout)), "Expected a samlp:Authn"),
    ]
    for send, message in cases:
        assert_refused_and_audited(app, send(), before, message)


def test_an_issuer_that_is_not_an_entity_id_is_refused(
    app: Flask, http: FlaskClient, sp: dict[str, Any], logged_in: TestUser
) -> None:
    before = saml.counts(app)
    root = saml.authn_request()
    root.find(f"{{{saml.NS['saml']}}}Issuer").set("Format", saml.EMAIL)
    response = http.post("/saml/sso", data=saml.post_fields(etree.tostring(root)))
    assert_refused_and_audited(app, response, before, "must be an entity ID")
