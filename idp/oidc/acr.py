"""Authentication context: what ``acr_values`` and an ``acr`` claims request ask for (pure).

OIDC Core §3.1.2.1 (``acr_values``) and §5.5.1.1 (``acr`` as an Essential Claim). The IdP
states Keycloak's levels, ``1`` (password) and ``2`` (several factors), and understands the
multi-factor names relying parties commonly ask for: REFEDS MFA and the PAPE policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from typing import Final

ACR_ONE_FACTOR: Final = "1"
ACR_MFA: Final = "2"
REFEDS_MFA: Final = "https://refeds.org/profile/mfa"
PAPE_MFA: Final = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
ACR_VALUES_SUPPORTED: Final = (ACR_ONE_FACTOR, ACR_MFA, REFEDS_MFA, PAPE_MFA)
MULTI_FACTOR: Final = frozenset({ACR_MFA, REFEDS_MFA, PAPE_MFA})


@dataclass(frozen=True)
class AcrRequest:
    """The ``acr`` values a request names, most preferred first, and whether they are essential."""

    values: tuple[str, ...] = ()
    essential: bool = False

    @property
    def needs_mfa(self) -> bool:
        """Return whether every known value asked for is a multi-factor one."""
        known = [value for value in self.values if value in ACR_VALUES_SUPPORTED]
        return bool(known) and all(value in MULTI_FACTOR for value in known)


def _claims_acr(raw: str | None) -> tuple[list[str], bool]:
    if not raw:
        return [], False
    try:
        data: Any = json.loads(raw)
        member = data["id_token"]["acr"]
    except (ValueError, TypeError, KeyError):
        return [], False
    if not isinstance(member, dict):
        return [], False
    values = member.get("values")
    if not isinstance(values, list):
        values = [member["value"]] if "value" in member else []
    return [v for v in values if isinstance(v, str)], member.get("essential") is True


def parse_acr_request(acr_values: str | None, claims: str | None) -> AcrRequest:
    """Return what ``acr_values`` and the ``claims`` parameter's ``id_token.acr`` ask for."""
    claimed, essential = _claims_acr(claims)
    values = [*claimed, *(acr_values or "").split()]
    return AcrRequest(tuple(dict.fromkeys(values))[:20], essential and bool(claimed))


def choose_acr(login_acr: str | None, request: AcrRequest) -> str | None:
    """Return the first requested value the login satisfies, or None when none is."""
    for value in request.values:
        if value == ACR_ONE_FACTOR or (value in MULTI_FACTOR and login_acr == ACR_MFA):
            return value
    return None


def is_multi_factor(login_acr: str | None) -> bool:
    return login_acr == ACR_MFA
