"""A software WebAuthn authenticator (ES256, attestation "none") and the passkey forms over HTTP.

It builds real authenticator data, CBOR attestation objects and ECDSA signatures with
``cryptography`` and ``cbor2``, so py_webauthn verifies them as it would a device's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from tests.helpers.forms import csrf_token

UP, UV, AT = 0x01, 0x04, 0x40  # user present, user verified, attested credential data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One discoverable ES256 credential for ``origin`` (RP ID: its host)."""

    origin: str = "http://idp.test"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    user_handle: bytes | None = None

    @property
    def rp_id(self) -> str:
        return self.origin.split("://", 1)[1].split(":", 1)[0]

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        return json.dumps(data, separators=(",", ":")).encode()

    def _auth_data(self, flags: int, attested: bytes = b"", rp_id: str | None = None) -> bytes:
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        cose = {
            1: 2,  # kty: EC2
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        return cbor2.dumps(cose)

    def create(
        self, options: dict[str, Any], *, origin: str | None = None, user_verified: bool = True
    ) -> dict[str, Any]:
        """Answer ``navigator.credentials.create()`` options: the credential's JSON."""
        self.user_handle = unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = (
            bytes(16)  # AAGUID: none
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        flags = UP | AT | (UV if user_verified else 0)
        auth_data = self._auth_data(flags, attested, options["rp"]["id"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        user_verified: bool = True,
        sign_count: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """Answer ``navigator.credentials.get()`` options: a signed assertion's JSON.

        The counter goes up by one unless ``sign_count`` sets it.
        """
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._auth_data(UP | (UV if user_verified else 0), rp_id=options["rpId"])
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        handle = user_handle if user_handle is not None else self.user_handle
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if handle:
            response["userHandle"] = b64url(handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": response,
        }


def enrol(
    http: FlaskClient, authenticator: SoftAuthenticator, name: str = "Laptop", **options: Any
) -> Any:
    """Add a passkey through /account/security for the logged-in browser; the POST's response."""
    token = csrf_token(http.get("/account/security").data)
    started = http.post("/account/security/passkeys/options", data={"csrf_token": token})
    assert started.status_code == 200, started.data
    credential = authenticator.create(started.get_json(), **options)
    form = {
        "csrf_token": token,
        "action": "add",
        "name": name,
        "credential": json.dumps(credential),
    }
    return http.post("/account/security/passkeys", data=form)


def passkey_login(
    http: FlaskClient,
    authenticator: SoftAuthenticator,
    next_url: str | None = None,
    *,
    force: bool = False,
    **options: Any,
) -> Any:
    """Sign in with the passkey from the login page (passwordless); the verify POST's response.

    ``force``: the login page's forced re-authentication (a signed-in browser confirming).
    """
    query = {"next": next_url} if next_url else {}
    if force:
        query["force"] = "1"
    page = http.get("/login", query_string=query)
    token = csrf_token(page.data)
    started = http.post("/login/passkey/options", data={"csrf_token": token})
    assert started.status_code == 200, started.data
    credential = authenticator.get(started.get_json(), **options)
    form = {"csrf_token": token, "credential": json.dumps(credential), **query}
    return http.post("/login/passkey/verify", data=form)
