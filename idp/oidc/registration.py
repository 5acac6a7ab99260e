"""OAuth 2.0 Dynamic Client Registration (RFC 7591 §3) over ``clients.register_client``.

Authlib's ``ClientRegistrationEndpoint`` is not used: it lets werkzeug answer bad JSON with
its own errors, stamps ``client_id_issued_at`` from the wall clock and echoes the request
instead of what was stored. Validation and storage stay in ``clients.py``, shared with the CLI.
See https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc7591/endpoint.py and the
request's ``get_json()`` in https://github.com/authlib/authlib/blob/v1.9.10/authlib/integrations/flask_oauth2/requests.py#L51
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any

from authlib.oauth2 import OAuth2Error

from idp.attributes import SCOPES
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.models.oidc import OAuthClient
from idp.oidc.clients import AUTH_METHODS
from idp.oidc.clients import DEFAULT_SCOPE
from idp.oidc.clients import ClientSpec
from idp.oidc.clients import load_jwks
from idp.oidc.clients import register_client
from idp.oidc.clients import validate_redirect_uri

MAX_BODY = 64 * 1024
MAX_URIS = 20
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# RFC 7591 §3.2.1: the server "MAY ... substitute them with suitable values". A dynamically
# registered client gets no client_credentials unless it asks for it.
DEFAULT_GRANT_TYPES = ["authorization_code", "refresh_token"]

RegistrationResponse = tuple[int, dict[str, Any], dict[str, str]]


class RegistrationError(OAuth2Error):  # type: ignore[misc]
    """A registration request refused with an RFC 7591 §3.2.2 (or RFC 6750 §3.1) error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description, status_code=status, error=error)

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        if self.status_code == 401:  # RFC 6750 §3: the missing or wrong initial access token
            headers.append(("WWW-Authenticate", f'Bearer error="{self.error}"'))
        return headers


def _ascii(text: str) -> str:
    # RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)[:300]


def _metadata_error(description: str) -> RegistrationError:
    return RegistrationError("invalid_client_metadata", _ascii(description))


def check_initial_access_token(expected: str | None, authorization: str | None) -> None:
    """Accept only ``Authorization: Bearer <registration_token>`` (RFC 7591 §3).

    Raises:
        RegistrationError: registration is off (403) or the token is missing or wrong (401).

    """
    if not expected:
        raise RegistrationError(
            "access_denied", "Dynamic client registration is disabled on this server.", 403
        )
    scheme, _, presented = (authorization or "").partition(" ")
    # Compared as bytes: compare_digest refuses non-ASCII str, and a header may carry any.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    ):
        raise RegistrationError(
            "invalid_token", "A valid initial access token is required to register.", 401
        )


def _has_control(value: str) -> bool:
    # NUL is refused by PostgreSQL and the rest has no place in a name or a URI.
    return any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in value)


def _validate_jwks(jwks: Any) -> dict[str, Any]:
    if not isinstance(jwks, dict):
        raise _metadata_error("jwks must be a JWK Set object")
    try:
        return load_jwks(json.dumps(jwks))
    except InvalidInputError as error:
        raise _metadata_error(str(error)) from None


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or _has_control(value):
        raise _metadata_error(f"{name} must be a non-empty string without control characters")
    return value


def _str_list(data: dict[str, Any], name: str) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_URIS
        or not all(isinstance(item, str) and item and not _has_control(item) for item in value)
    ):
        raise _metadata_error(
            f"{name} must be a list of at most {MAX_URIS} non-empty strings without control "
            "characters"
        )
    return value


def _parse_json(mimetype: str, body: bytes) -> dict[str, Any]:
    # RFC 7591 §3.1: "sends an HTTP POST ... with a content type of application/json".
    if mimetype != "application/json":
        raise _metadata_error("The request body must be JSON (Content-Type: application/json).")
    if len(body) > MAX_BODY:
        raise _metadata_error(f"The client metadata must be at most {MAX_BODY} bytes.")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _metadata_error("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _metadata_error("The client metadata must be a JSON object.")
    return data


def parse_client_metadata(mimetype: str, body: bytes) -> ClientSpec:
    """Turn an RFC 7591 §2 metadata document into a ClientSpec; unknown members are ignored.

    Raises:
        RegistrationError: ``invalid_redirect_uri`` or ``invalid_client_metadata``.

    """
    data = _parse_json(mimetype, body)
    try:
        redirect_uris = _str_list(data, "redirect_uris")
    except RegistrationError as error:
        raise RegistrationError("invalid_redirect_uri", error.description) from None
    if not redirect_uris:
        raise RegistrationError("invalid_redirect_uri", "redirect_uris is required.")
    for uri in redirect_uris:
        try:
            validate_redirect_uri(uri)
        except InvalidInputError as error:
            raise RegistrationError("invalid_redirect_uri", _ascii(str(error))) from None

    method = _optional_str(data, "token_endpoint_auth_method") or "client_secret_basic"
    if method not in AUTH_METHODS:
        raise _metadata_error(
            f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}"
        )
    # Only the code flow exists here (RFC 7591 §2.1: "code" pairs with authorization_code).
    response_types = _str_list(data, "response_types") or ["code"]
    if set(response_types) != {"code"}:
        raise _metadata_error("response_types must be [code]")
    grant_types = _str_list(data, "grant_types") or list(DEFAULT_GRANT_TYPES)
    if not set(grant_types) <= set(GRANT_TYPES):
        raise _metadata_error(f"grant_types must be among {', '.join(GRANT_TYPES)}")
    if "authorization_code" not in grant_types:
        raise _metadata_error("the code response type needs the authorization_code grant")
    scope = _optional_str(data, "scope")
    if scope is not None and not set(scope.split()) <= set(SCOPES):
        raise _metadata_error(f"scope must be among {' '.join(SCOPES)}")

    jwks = None if data.get("jwks") is None else _validate_jwks(data["jwks"])

    client_id = secrets.token_urlsafe(16)
    return ClientSpec(
        # RFC 7591 §2: "If omitted, the authorization server MAY display the raw client_id".
        client_name=_optional_str(data, "client_name") or client_id,
        client_id=client_id,
        redirect_uris=list(dict.fromkeys(redirect_uris)),
        token_endpoint_auth_method=method,
        # A registrant must never skip the consent page: trust is the operator's decision.
        is_trusted=False,
        post_logout_redirect_uris=_str_list(data, "post_logout_redirect_uris") or [],
        backchannel_logout_uri=_optional_str(data, "backchannel_logout_uri"),
        frontchannel_logout_uri=_optional_str(data, "frontchannel_logout_uri"),
        jwks=jwks,
        jwks_uri=_optional_str(data, "jwks_uri"),
        id_token_signed_response_alg=_optional_str(data, "id_token_signed_response_alg") or "RS256",
        subject_type=_optional_str(data, "subject_type") or "public",
        scope=" ".join(dict.fromkeys(scope.split())) if scope and scope.split() else DEFAULT_SCOPE,
        grant_types=list(dict.fromkeys(grant_types)),
        self_registered=True,
    )


def build_registration_response(client: OAuthClient, secret: str | None) -> dict[str, Any]:
    """Return the client information response: every registered value (RFC 7591 §3.2.1)."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.client_name,
        "redirect_uris": list(client.redirect_uris),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "response_types": list(client.response_types),
        "scope": client.scope,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "subject_type": client.subject_type,
    }
    if secret is not None:
        # RFC 7591 §3.2.1: client_secret_expires_at is "REQUIRED if client_secret is issued".
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    if client.post_logout_redirect_uris:
        body["post_logout_redirect_uris"] = list(client.post_logout_redirect_uris)
    optional = {
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    return body


def create_registration_response(
    *, registration_token: str | None, authorization: str | None, mimetype: str, body: bytes
) -> RegistrationResponse:
    """Authenticate, validate and store one client; return ``(status, body, headers)``.

    Raises:
        RegistrationError: the request is refused; nothing was stored.

    """
    check_initial_access_token(registration_token, authorization)
    spec = parse_client_metadata(mimetype, body)
    try:
        client, secret = register_client(spec)
    except (InvalidInputError, ConflictError) as error:
        raise _metadata_error(str(error)) from None
    # RFC 7591 §3.2.1 answers with a client secret: nothing on the way may cache it.
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    return 201, build_registration_response(client, secret), headers
