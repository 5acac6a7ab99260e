"""OpenID Provider metadata (OIDC Discovery 1.0 §3, RFC 8414), true to what is implemented."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from idp.attributes import ATTRIBUTES
from idp.attributes import SCOPES
from idp.oidc.acr import ACR_VALUES_SUPPORTED
from idp.oidc.clients import ID_TOKEN_ALGS
from idp.oidc.grants import CLIENT_AUTH_METHODS
from idp.oidc.grants import CONFIDENTIAL_AUTH_METHODS
from idp.settings import Settings

# RFC 8414 §2: every method listed that signs a JWT needs its algorithms listed too.
CLIENT_ASSERTION_ALGS = ["RS256", "ES256", "PS256"]


def build_metadata(
    settings: Settings, *, optional_endpoints: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the discovery document for ``settings.issuer``.

    ``optional_endpoints`` maps metadata names (``registration_endpoint``,
    ``end_session_endpoint``) to the paths of the endpoints this app really serves.
    """
    issuer = settings.issuer
    optional = {name: f"{issuer}{path}" for name, path in (optional_endpoints or {}).items()}
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        **optional,
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": sorted(
            {
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "acr",
                "amr",
                "sid",
                "azp",
                "at_hash",
            }
            | {attribute.claim for attribute in ATTRIBUTES}
        ),
        "acr_values_supported": list(ACR_VALUES_SUPPORTED),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "claim_types_supported": ["normal"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
    }
