"""WebAuthn ceremonies through py_webauthn: options out, responses verified (pure: no SQL, no HTTP).

Registration: WebAuthn §7.1; authentication: §7.2 (https://www.w3.org/TR/webauthn-3/).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from webauthn import base64url_to_bytes
from webauthn import generate_authentication_options
from webauthn import generate_registration_options
from webauthn import options_to_json
from webauthn import verify_authentication_response
from webauthn import verify_registration_response
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers import parse_registration_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AttestationConveyancePreference
from webauthn.helpers.structs import AuthenticationCredential
from webauthn.helpers.structs import AuthenticatorSelectionCriteria
from webauthn.helpers.structs import PublicKeyCredentialDescriptor
from webauthn.helpers.structs import RegistrationCredential
from webauthn.helpers.structs import ResidentKeyRequirement
from webauthn.helpers.structs import UserVerificationRequirement
from webauthn.registration.verify_registration_response import VerifiedRegistration

from idp.errors import IdpError

# How long the browser may take (a hint to it) and how long the server keeps the challenge.
CEREMONY_TTL = timedelta(minutes=5)
# The longest credential JSON accepted (an attestation with a certificate chain is a few kB).
MAX_CREDENTIAL_JSON = 64 * 1024

# What py_webauthn or the JSON it parses may raise on hostile input: all are a failed check.
_BAD_RESPONSE = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, binascii.Error)


class PasskeyError(IdpError):
    """The passkey response failed a check (its message is for logs and audit, not users)."""


@dataclass(frozen=True)
class RelyingParty:
    """The WebAuthn Relying Party this IdP is: its RP ID (a host) and its one origin."""

    rp_id: str
    origin: str
    name: str


def build_relying_party(issuer: str, name: str = "idp") -> RelyingParty:
    """Return the Relying Party of the IdP whose issuer is ``issuer`` (RP ID: its host)."""
    parts = urlsplit(issuer)
    return RelyingParty(
        rp_id=parts.hostname or "localhost", origin=f"{parts.scheme}://{parts.netloc}", name=name
    )


def _descriptors(credential_ids: list[str]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(item)) for item in credential_ids]


def build_registration_options(
    rp: RelyingParty,
    *,
    user_handle: bytes,
    user_name: str,
    display_name: str,
    exclude: list[str],
    challenge: bytes,
) -> str:
    """Return the JSON options of ``navigator.credentials.create()`` (WebAuthn §5.4).

    A discoverable credential is preferred (so it can sign in without a username) and so is
    user verification; the user's existing credentials are excluded (§5.4.3).
    """
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=int(CEREMONY_TTL.total_seconds() * 1000),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(exclude),
    )
    return options_to_json(options)


def build_authentication_options(
    rp: RelyingParty, *, allow: list[str] | None, challenge: bytes
) -> str:
    """Return the JSON options of ``navigator.credentials.get()`` (WebAuthn §5.5).

    ``allow`` None: any discoverable credential of this RP (passwordless login), where user
    verification is required: without it a passkey alone proves possession only, one factor,
    weaker than what a password login asks (Keycloak's passwordless policy does the same).
    """
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=int(CEREMONY_TTL.total_seconds() * 1000),
        allow_credentials=_descriptors(allow) if allow is not None else None,
        user_verification=(
            UserVerificationRequirement.PREFERRED
            if allow is not None
            else UserVerificationRequirement.REQUIRED
        ),
    )
    return options_to_json(options)


def _check_size(credential_json: str) -> None:
    if len(credential_json) > MAX_CREDENTIAL_JSON:
        raise PasskeyError("credential too large")


def parse_registration(credential_json: str) -> RegistrationCredential:
    """Parse the browser's ``create()`` result.

    Raises:
        PasskeyError: it is not a registration credential.

    """
    _check_size(credential_json)
    try:
        return parse_registration_credential_json(credential_json)
    except _BAD_RESPONSE as error:
        raise PasskeyError(f"malformed registration: {error}") from None


def parse_assertion(credential_json: str) -> AuthenticationCredential:
    """Parse the browser's ``get()`` result.

    Raises:
        PasskeyError: it is not an authentication credential.

    """
    _check_size(credential_json)
    try:
        credential = parse_authentication_credential_json(credential_json)
    except _BAD_RESPONSE as error:
        raise PasskeyError(f"malformed assertion: {error}") from None
    if bytes_to_base64url(credential.raw_id) != credential.id:
        raise PasskeyError("id and rawId differ")
    return credential


def credential_key(raw_id: bytes) -> str:
    """Return the stored form of a credential ID (base64url, no padding)."""
    return bytes_to_base64url(raw_id)


def verify_registration(
    rp: RelyingParty, credential: RegistrationCredential, challenge: bytes
) -> VerifiedRegistration:
    """Verify an attestation (WebAuthn §7.1): challenge, origin, RP ID, user presence.

    Raises:
        PasskeyError: any check failed.

    """
    try:
        return verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
        )
    except _BAD_RESPONSE as error:
        raise PasskeyError(f"registration refused: {error}") from None


def verify_assertion(
    rp: RelyingParty,
    credential: AuthenticationCredential,
    *,
    challenge: bytes,
    public_key: bytes,
) -> VerifiedAuthentication:
    """Verify an assertion's signature, challenge, origin, RP ID and user presence (§7.2).

    The signature counter is left to ``is_sign_count_regression``, on the verified value,
    so that a regression is told apart from any other failure and audited.

    Raises:
        PasskeyError: any check failed.

    """
    try:
        return verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,  # disables the library's check: ours follows
        )
    except _BAD_RESPONSE as error:
        raise PasskeyError(f"assertion refused: {error}") from None


def is_sign_count_regression(stored: int, received: int) -> bool:
    """Return whether the counter did not grow: a sign of a cloned authenticator (§6.1.1).

    Both zero is the authenticator that keeps no counter (most synced passkeys): accepted.
    """
    return (stored > 0 or received > 0) and received <= stored
