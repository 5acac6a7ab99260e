"""Payroll, a python3-saml SP, against the real IdP: metadata, SSO and single logout.

Signatures the SP makes are checked here with ``cryptography`` directly, not with python3-saml.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import zlib
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote_plus
from urllib.parse import unquote_plus
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from relying_party_demo.payroll import create_app
from tests.demo.conftest import ALICE
from tests.demo.conftest import DemoApp
from tests.demo.conftest import LiveIdp
from tests.demo.conftest import hidden_fields
from tests.demo.conftest import post_form
from tests.demo.conftest import sign_in
from tests.demo.conftest import stored_user
from tests.helpers.saml import sp_key_pair

ROOT = Path(__file__).resolve().parents[2]
NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
}
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
IFRAME_SOURCE = re.compile(r'<iframe[^>]*\ssrc="([^"]+)"')
EMAIL_LINE = 'id="email">alice@example.com</strong>'


def xml(text: str | bytes) -> Any:
    data = text.encode() if isinstance(text, str) else text
    return etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))


def idp_location(idp: LiveIdp, service: str) -> str:
    """Return the IdP's HTTP-Redirect location of ``service`` from its /saml/metadata."""
    metadata = xml(requests.get(f"{idp.url}/saml/metadata", timeout=30).content)
    locations = metadata.xpath(
        f"//md:IDPSSODescriptor/md:{service}[@Binding=$binding]/@Location",
        namespaces=NS,
        binding=REDIRECT,
    )
    assert locations, f"the IdP metadata names no HTTP-Redirect {service}"
    location: str = locations[0]
    return location


def sp_certificate(app: DemoApp) -> x509.Certificate:
    pem = app.app.extensions["payroll.sp_settings"]["sp"]["x509cert"]
    return x509.load_pem_x509_certificate(pem.encode())


def check_redirect_signature(location: str, certificate: x509.Certificate, message: str) -> None:
    """Verify an HTTP-Redirect binding signature (SAML Bindings §3.4.4.1) over the raw query."""
    raw = dict(part.split("=", 1) for part in urlsplit(location).query.split("&"))
    assert unquote_plus(raw["SigAlg"]) == RSA_SHA256
    names = [message, "RelayState", "SigAlg"] if "RelayState" in raw else [message, "SigAlg"]
    signed = "&".join(f"{name}={raw[name]}" for name in names).encode()
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    signature = base64.b64decode(unquote_plus(raw["Signature"]))
    public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())


def redirect_message(location: str, message: str) -> Any:
    """Decode the DEFLATE-encoded SAML message of an HTTP-Redirect URL."""
    encoded = parse_qs(urlsplit(location).query)[message][0]
    return xml(zlib.decompress(base64.b64decode(encoded), -15))


def test_the_metadata_is_valid_and_says_what_the_idp_needs(payroll: DemoApp) -> None:
    response = requests.get(f"{payroll.url}/saml/metadata", timeout=30)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/samlmetadata+xml")
    sp_settings = payroll.app.extensions["payroll.sp_settings"]
    saml_settings = OneLogin_Saml2_Settings(sp_settings, sp_validation_only=True)
    assert saml_settings.validate_metadata(response.content) == []
    root = xml(response.content)
    assert root.get("entityID") == f"{payroll.url}/saml/metadata"
    (sp,) = root.xpath("md:SPSSODescriptor", namespaces=NS)
    assert sp.get("AuthnRequestsSigned") == "true"
    assert sp.get("WantAssertionsSigned") == "true"
    (acs,) = sp.xpath("md:AssertionConsumerService", namespaces=NS)
    assert (acs.get("Binding"), acs.get("Location")) == (POST, f"{payroll.url}/saml/acs")
    # The back channel first (the IdP reaches it without the browser), then the front channel.
    assert [
        (sls.get("Binding"), sls.get("Location"))
        for sls in sp.xpath("md:SingleLogoutService", namespaces=NS)
    ] == [(SOAP, f"{payroll.url}/saml/soap"), (REDIRECT, f"{payroll.url}/saml/sls")]
    (published,) = sp.xpath(
        "md:KeyDescriptor[not(@use) or @use='signing']//ds:X509Certificate/text()",
        namespaces=NS,
    )
    certificate = x509.load_der_x509_certificate(base64.b64decode(published))
    assert certificate == sp_certificate(payroll)


def test_the_sp_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = {"PAYROLL_SP_DIR": str(tmp_path), "IDP_ISSUER": "http://127.0.0.1:9"}

    first = create_app(settings).extensions["payroll.sp_settings"]["sp"]["x509cert"]
    second = create_app(settings).extensions["payroll.sp_settings"]["sp"]["x509cert"]

    assert first == second == (tmp_path / "sp.crt").read_text()
    assert (tmp_path / "sp.key").stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key((tmp_path / "sp.key").read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(first.encode())
    assert key.public_key() == certificate.public_key()


def test_the_metadata_command_prints_what_the_app_serves(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PAYROLL_SP_DIR": str(tmp_path),
        "PAYROLL_BASE_URL": "http://127.0.0.1:5003",
    }
    result = subprocess.run(
        [sys.executable, "-m", "relying_party_demo.payroll", "metadata"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    root = xml(result.stdout)
    assert root.get("entityID") == "http://127.0.0.1:5003/saml/metadata"
    served = create_app({"PAYROLL_SP_DIR": str(tmp_path)}).test_client().get("/saml/metadata")
    # python3-saml stamps validUntil from the clock: the two may straddle a second.
    undated = re.compile(r' validUntil="[^"]*"')
    assert undated.sub("", served.text) == undated.sub("", result.stdout)


def test_an_unreachable_idp_gives_a_page_not_a_crash(tmp_path: Path) -> None:
    app = create_app({"PAYROLL_SP_DIR": str(tmp_path), "IDP_ISSUER": "http://127.0.0.1:9"})

    response = app.test_client().get("/login")

    assert response.status_code == 503
    assert "Identity provider unreachable" in response.text


def test_log_in_sends_a_signed_authn_request_to_the_idp(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session
) -> None:
    response = browser.get(f"{payroll.url}/login", allow_redirects=False, timeout=30)

    assert response.status_code == 302
    location = response.headers["Location"]
    sso = idp_location(idp_server, "SingleSignOnService")
    assert location.split("?")[0] == sso
    check_redirect_signature(location, sp_certificate(payroll), "SAMLRequest")
    request = redirect_message(location, "SAMLRequest")
    assert request.tag == f"{{{NS['samlp']}}}AuthnRequest"
    assert request.get("Destination") == sso
    assert request.get("AssertionConsumerServiceURL") == f"{payroll.url}/saml/acs"
    assert request.get("ProtocolBinding") == POST
    assert request.findtext("saml:Issuer", namespaces=NS) == payroll.client_id
    key = browser.cookies.get("payroll_session")
    assert payroll.store.load(key)["saml_request_id"] == request.get("ID")


def saml_sign_in(browser: requests.Session, payroll: DemoApp) -> requests.Response:
    """Log in at Payroll through the IdP's form and the HTTP-POST binding back."""
    return post_form(browser, sign_in(browser, payroll))


def test_sign_in_shows_the_user_and_the_attributes(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session
) -> None:
    page = saml_sign_in(browser, payroll)

    assert page.url == f"{payroll.url}/"
    assert EMAIL_LINE in page.text
    assert '<th scope="row">displayName</th><td>Alice Liddell</td>' in page.text
    assert '<th scope="row">mail</th><td>alice@example.com</td>' in page.text
    user = stored_user(payroll, browser)
    assert user is not None
    assert user["session_index"]
    assert f"<td>{user['session_index']}</td>" in page.text
    assert user["issuer"] == f"{idp_server.url}/saml/metadata"


def test_a_response_posted_twice_signs_in_once(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session
) -> None:
    sign_in(browser, payroll)  # the IdP's login session; Payroll's first response is posted below
    started = browser.get(
        f"{idp_server.url}/saml/sso/init", params={"sp": payroll.client_id}, timeout=30
    )
    fields = hidden_fields(started.text)
    assert "SAMLResponse" in fields
    assert EMAIL_LINE in post_form(browser, started).text

    with requests.Session() as thief:
        replayed = thief.post(f"{payroll.url}/saml/acs", data=fields, timeout=30)

        assert replayed.status_code == 400
        assert "already used" in replayed.text
        assert stored_user(payroll, thief) is None


def test_a_garbage_response_signs_nobody_in(payroll: DemoApp, browser: requests.Session) -> None:
    before = payroll.store.count()

    for garbage in ("not base64!", base64.b64encode(b"<x/>").decode(), ""):
        response = browser.post(f"{payroll.url}/saml/acs", data={"SAMLResponse": garbage})

        assert response.status_code == 400
    assert stored_user(payroll, browser) is None
    assert payroll.store.count() <= before + 1


def test_log_out_sends_a_signed_logout_request_and_comes_back(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session
) -> None:
    page = saml_sign_in(browser, payroll)
    user = stored_user(payroll, browser)
    assert user is not None
    old_key = browser.cookies.get("payroll_session")

    response = browser.post(
        f"{payroll.url}/logout",
        data={"csrf_token": hidden_fields(page.text)["csrf_token"]},
        allow_redirects=False,
        timeout=30,
    )

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.split("?")[0] == idp_location(idp_server, "SingleLogoutService")
    check_redirect_signature(location, sp_certificate(payroll), "SAMLRequest")
    request = redirect_message(location, "SAMLRequest")
    assert request.tag == f"{{{NS['samlp']}}}LogoutRequest"
    assert request.findtext("saml:NameID", namespaces=NS) == user["name_id"]
    assert request.findtext("samlp:SessionIndex", namespaces=NS) == user["session_index"]
    assert payroll.store.load(old_key) is None

    landing = browser.get(location, timeout=30)

    assert landing.url.startswith(f"{payroll.url}/")
    assert "signed out of the identity provider" in landing.text
    assert 'name="password"' in browser.get(f"{payroll.url}/login", timeout=30).text


def logout_request_url(
    payroll: DemoApp, user: dict[str, Any], key: rsa.RSAPrivateKey | None
) -> str:
    """An IdP-style LogoutRequest for ``user``, signed with ``key`` (or not signed)."""
    issuer = user["issuer"]
    message = (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_{uuid4().hex}" Version="2.0" IssueInstant="2030-01-01T00:00:00Z" '
        f'Destination="{payroll.url}/saml/sls">'
        f"<saml:Issuer>{issuer}</saml:Issuer>"
        f'<saml:NameID Format="{user["name_id_format"]}">{user["name_id"]}</saml:NameID>'
        f"<samlp:SessionIndex>{user['session_index']}</samlp:SessionIndex>"
        "</samlp:LogoutRequest>"
    )
    compressor = zlib.compressobj(wbits=-15)
    deflated = compressor.compress(message.encode()) + compressor.flush()
    query = f"SAMLRequest={quote_plus(base64.b64encode(deflated).decode())}"
    if key is not None:
        query += f"&SigAlg={quote_plus(RSA_SHA256)}"
        signature = key.sign(query.encode(), padding.PKCS1v15(), hashes.SHA256())
        query += f"&Signature={quote_plus(base64.b64encode(signature).decode())}"
    return f"{payroll.url}/saml/sls?{query}"


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "foreign key"])
def test_a_logout_request_the_idp_did_not_sign_is_refused(
    payroll: DemoApp, browser: requests.Session, signed: bool
) -> None:
    saml_sign_in(browser, payroll)
    user = stored_user(payroll, browser)
    assert user is not None
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if signed else None

    response = requests.get(logout_request_url(payroll, user, key), timeout=30)

    assert response.status_code == 400
    assert "Logout refused" in response.text
    assert stored_user(payroll, browser) == user
    assert EMAIL_LINE in browser.get(f"{payroll.url}/", timeout=30).text


def test_a_logout_at_another_app_reaches_payroll_by_soap(
    idp_server: LiveIdp, notes: DemoApp, payroll: DemoApp, browser: requests.Session
) -> None:
    saml_sign_in(browser, payroll)
    notes_page = browser.get(f"{notes.url}/", timeout=30)
    assert EMAIL_LINE in notes_page.text

    # Log out at Notes: the IdP tells Payroll by a SOAP LogoutRequest, before the page shows.
    logged_out = browser.post(
        f"{notes.url}/logout",
        data={"csrf_token": hidden_fields(notes_page.text)["csrf_token"]},
        timeout=30,
    )

    assert logged_out.status_code == 200
    assert not [src for src in iframe_sources(logged_out.text) if src.startswith(payroll.url)]
    assert stored_user(payroll, browser) is None
    assert EMAIL_LINE not in browser.get(f"{payroll.url}/", timeout=30).text


def test_idp_session_revoke_signs_the_user_out_of_payroll(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session
) -> None:
    saml_sign_in(browser, payroll)
    assert EMAIL_LINE in browser.get(f"{payroll.url}/", timeout=30).text
    sessions = json.loads(idp_server.idp("session", "list", "--json").stdout)
    assert any(payroll.client_id in json.dumps(item["participants"]) for item in sessions)

    idp_server.idp("session", "revoke", "--user", ALICE[0])

    assert stored_user(payroll, browser) is None
    # Payroll's passive sign-in check comes back from the IdP empty-handed (NoPassive).
    page = post_form(browser, browser.get(f"{payroll.url}/", timeout=30))
    assert page.url == f"{payroll.url}/"
    assert EMAIL_LINE not in page.text
    assert stored_user(payroll, browser) is None


def forged_soap_logout_request(payroll: DemoApp, user: dict[str, Any]) -> bytes:
    """Build a SOAP LogoutRequest for ``user`` as the IdP would, signed with another key."""
    request = etree.fromstring(
        f"""<samlp:LogoutRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}"
        ID="_{uuid4().hex}" Version="2.0" IssueInstant="2030-01-01T00:00:00Z"
        Destination="{payroll.url}/saml/soap"><saml:Issuer>{user["issuer"]}</saml:Issuer>
        <saml:NameID>{user["name_id"]}</saml:NameID></samlp:LogoutRequest>""".encode()
    )
    signed = OneLogin_Saml2_Utils.add_sign(request, *sp_key_pair("attacker"))
    return (
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{NS_SOAP}"><SOAP-ENV:Body>'.encode()
        + signed
        + b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )


@pytest.mark.parametrize(
    "body",
    [b"<!DOCTYPE x [<!ENTITY e 'x'>]><x>&e;</x>", b"not xml", b"<a/>", None],
    ids=["doctype", "not-xml", "not-soap", "not-the-idps-signature"],
)
def test_a_soap_logout_request_payroll_cannot_trust_gets_a_fault(
    idp_server: LiveIdp, payroll: DemoApp, browser: requests.Session, body: bytes | None
) -> None:
    saml_sign_in(browser, payroll)
    user = stored_user(payroll, browser)
    assert user is not None
    if body is None:
        body = forged_soap_logout_request(payroll, user)

    response = requests.post(
        f"{payroll.url}/saml/soap", data=body, headers={"Content-Type": "text/xml"}, timeout=30
    )

    assert response.status_code == 400
    fault = xml(response.content).find(f"{{{NS_SOAP}}}Body/{{{NS_SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") == "SOAP-ENV:Client"
    assert stored_user(payroll, browser) == user


def iframe_sources(page: str) -> list[str]:
    return [unescape(src) for src in IFRAME_SOURCE.findall(page)]
