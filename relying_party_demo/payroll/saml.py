"""Payroll's python3-saml settings: its own key and certificate, then the IdP's metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

CERT_LIFETIME = timedelta(days=3650)
KEY_FILE = "sp.key"
CERT_FILE = "sp.crt"
METADATA_TIMEOUT_SECONDS = 10

# The IdP's attribute names (URI NameFormat) and the friendly names it pairs them with.
FRIENDLY_NAMES = {
    "urn:oid:0.9.2342.19200300.100.1.3": "mail",
    "urn:oid:2.16.840.1.113730.3.1.241": "displayName",
    "urn:oid:2.5.4.42": "givenName",
    "urn:oid:2.5.4.4": "sn",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": "isMemberOf",
}
REQUIRED_ATTRIBUTES = {"mail", "displayName"}


def load_sp_keys(folder: Path) -> tuple[str, str]:
    """Return the SP's (private key, certificate) PEMs, made self-signed on first use."""
    key_path, cert_path = folder / KEY_FILE, folder / CERT_FILE
    if key_path.exists() and cert_path.exists():
        return key_path.read_text(), cert_path.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Payroll demo SP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    # Written before the certificate, readable by the owner only: it signs our requests.
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(key_pem)
    cert_path.write_text(cert_pem)
    return key_pem, cert_pem


def build_sp_settings(base_url: str, key_pem: str, cert_pem: str) -> dict[str, Any]:
    """Return python3-saml settings for the SP alone (no ``idp`` part yet)."""
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": base_url + "/saml/metadata",
            "assertionConsumerService": {
                "url": base_url + "/saml/acs",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_POST,
            },
            "singleLogoutService": {
                "url": base_url + "/saml/sls",
                "binding": OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT,
            },
            "NameIDFormat": OneLogin_Saml2_Constants.NAMEID_PERSISTENT,
            "x509cert": cert_pem,
            "privateKey": key_pem,
            "attributeConsumingService": {
                "serviceName": "Payroll",
                "serviceDescription": "Payroll demo app",
                "requestedAttributes": [
                    {
                        "name": uri,
                        "friendlyName": friendly,
                        "nameFormat": OneLogin_Saml2_Constants.ATTRNAME_FORMAT_URI,
                        "isRequired": friendly in REQUIRED_ATTRIBUTES,
                    }
                    for uri, friendly in FRIENDLY_NAMES.items()
                ],
            },
        },
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "wantAssertionsEncrypted": False,
            "wantNameIdEncrypted": False,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "signMetadata": False,
            "rejectDeprecatedAlgorithm": True,
            "rejectUnsolicitedResponsesWithInResponseTo": True,
            "signatureAlgorithm": OneLogin_Saml2_Constants.RSA_SHA256,
            "digestAlgorithm": OneLogin_Saml2_Constants.SHA256,
        },
    }


def load_idp_settings(metadata_url: str) -> dict[str, Any]:
    """Fetch the IdP's metadata and return its python3-saml ``idp`` settings.

    Raises:
        ValueError: the metadata names no IdP with a Redirect-binding SSO location.
        OSError: the metadata cannot be fetched.

    """
    data = OneLogin_Saml2_IdPMetadataParser.parse_remote(
        metadata_url, timeout=METADATA_TIMEOUT_SECONDS
    )
    idp = data.get("idp") if isinstance(data, Mapping) else None
    if not isinstance(idp, dict) or not idp.get("singleSignOnService", {}).get("url"):
        raise ValueError(f"{metadata_url} names no IdP SSO location (HTTP-Redirect binding)")
    return idp


def request_data(
    base_url: str,
    path: str,
    query_string: str,
    args: Mapping[str, str],
    form: Mapping[str, str],
) -> dict[str, Any]:
    """Describe the request the way python3-saml wants, from our configured base URL."""
    address = urlsplit(base_url)
    return {
        "https": "on" if address.scheme == "https" else "off",
        # Our base URL, not the Host header: Destination checks then do not trust the client.
        "http_host": address.netloc,
        "script_name": path,
        "get_data": dict(args),
        "post_data": dict(form),
        "query_string": query_string,
        # Check Redirect-binding signatures over the query string exactly as the IdP sent it.
        "validate_signature_from_qs": True,
    }
