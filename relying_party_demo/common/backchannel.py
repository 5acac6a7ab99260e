"""Validate an OIDC Back-Channel Logout Token with PyJWT (Back-Channel Logout 1.0 §2.4, §2.6).

https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import jwt

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# An explicitly typed Logout Token says "logout+jwt" (§2.4); untyped and plain "JWT" are allowed,
# the nonce and events checks below stop an ID Token from being replayed as one.
ACCEPTED_TYPES = {"logout+jwt", "application/logout+jwt", "jwt"}
REQUIRED_CLAIMS = ["iss", "aud", "iat", "exp", "jti"]
LEEWAY_SECONDS = 60


class LogoutTokenError(Exception):
    """The logout token is not one this RP may act on; answer 400."""


class KeysUnavailableError(Exception):
    """The IdP's JWKS could not be fetched; answer 503 so the IdP retries later."""


KeyResolver = Callable[[str], Any]


def validate_logout_token(
    token: str,
    *,
    key_for: KeyResolver,
    issuer: str,
    client_id: str,
    algorithms: Sequence[str],
) -> dict[str, Any]:
    """Return the claims of a valid logout token.

    Raises:
        LogoutTokenError: the token fails a check of §2.6.
        KeysUnavailableError: the keys to check it with cannot be had now.

    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise LogoutTokenError("the logout_token is not a JWT") from None
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise LogoutTokenError("the logout_token has the wrong typ")
    if header.get("alg") not in algorithms:
        raise LogoutTokenError("the logout_token is not signed with an expected algorithm")
    try:
        key = key_for(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except (jwt.PyJWTError, ValueError) as error:
        raise LogoutTokenError(f"the logout_token is invalid: {type(error).__name__}") from None
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise LogoutTokenError("the logout_token has no back-channel logout event")
    # §2.4: "A nonce Claim MUST NOT be present", so an ID Token cannot pass for a Logout Token.
    if "nonce" in claims:
        raise LogoutTokenError("the logout_token carries a nonce")
    sid, sub = claims.get("sid"), claims.get("sub")
    if sid is None and sub is None:
        raise LogoutTokenError("the logout_token has neither sid nor sub")
    if not all(value is None or isinstance(value, str) for value in (sid, sub)):
        raise LogoutTokenError("the logout_token has a malformed sid or sub")
    return claims


def ends_session(claims: dict[str, Any]) -> Callable[[Any], bool]:
    """Return a predicate matching the stored sessions that ``claims`` end (§2.7)."""
    sid, sub = claims.get("sid"), claims.get("sub")

    def matches(data: Any) -> bool:
        user = data.get("user") if hasattr(data, "get") else None
        if not isinstance(user, dict):
            return False
        if sid is not None and user.get("sid") != sid:
            return False
        return sub is None or user.get("sub") == sub

    return matches
