"""Back-Channel Logout 1.0 §2.6 checks of the demo apps' validator, with a key set of our own."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from relying_party_demo.common.backchannel import BACKCHANNEL_LOGOUT_EVENT
from relying_party_demo.common.backchannel import LogoutTokenError
from relying_party_demo.common.backchannel import ends_session
from relying_party_demo.common.backchannel import validate_logout_token

ISSUER = "https://idp.test"
CLIENT_ID = "notes"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": "jti-1",
        "sid": "sid-1",
        "sub": "sub-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def token(values: dict[str, Any], key: Any = KEY, typ: str | None = "logout+jwt") -> str:
    headers = {"typ": typ} if typ is not None else {}
    return jwt.encode(values, key, algorithm="RS256", headers=headers)


def validate(raw: str) -> dict[str, Any]:
    return validate_logout_token(
        raw,
        key_for=lambda _: KEY.public_key(),
        issuer=ISSUER,
        client_id=CLIENT_ID,
        algorithms=["RS256"],
    )


@pytest.mark.parametrize("typ", ["logout+jwt", "JWT", None])
def test_a_valid_token_gives_its_claims(typ: str | None) -> None:
    values = claims()

    assert validate(token(values, typ=typ)) == values


def test_sid_alone_or_sub_alone_is_enough() -> None:
    assert validate(token(claims(sub=None)))["sid"] == "sid-1"
    assert validate(token(claims(sid=None)))["sub"] == "sub-1"


REFUSED = {
    "no events": claims(events=None),
    "another event": claims(events={"http://schemas.openid.net/event/other": {}}),
    "event not an object": claims(events={BACKCHANNEL_LOGOUT_EVENT: "yes"}),
    "nonce present": claims(nonce="n-0S6_WzA2Mj"),
    "neither sid nor sub": claims(sid=None, sub=None),
    "sid not a string": claims(sid=12),
    "another audience": claims(aud="wiki"),
    "another issuer": claims(iss="https://evil.test"),
    "expired": claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    "no iat": claims(iat=None),
    "no exp": claims(exp=None),
    "no jti": claims(jti=None),
}


@pytest.mark.parametrize("values", REFUSED.values(), ids=REFUSED.keys())
def test_a_token_failing_a_check_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(LogoutTokenError):
        validate(token(values))


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(LogoutTokenError, match="InvalidSignatureError"):
        validate(token(claims(), key=OTHER_KEY))


def test_an_access_token_type_is_refused() -> None:
    with pytest.raises(LogoutTokenError, match="typ"):
        validate(token(claims(), typ="at+jwt"))


def test_an_unexpected_algorithm_is_refused() -> None:
    raw = jwt.encode(claims(), KEY, algorithm="PS256", headers={"typ": "logout+jwt"})

    with pytest.raises(LogoutTokenError, match="algorithm"):
        validate(raw)


def stored(sid: str | None, sub: str) -> dict[str, Any]:
    return {"user": {"sid": sid, "sub": sub}}


def test_sid_ends_only_that_session() -> None:
    matches = ends_session(claims())

    assert matches(stored("sid-1", "sub-1"))
    assert not matches(stored("sid-2", "sub-1"))
    assert not matches(stored("sid-1", "sub-2"))
    assert not matches({"silent_checked": True})


def test_sub_alone_ends_every_session_of_the_user() -> None:
    matches = ends_session(claims(sid=None))

    assert matches(stored("sid-1", "sub-1"))
    assert matches(stored("sid-2", "sub-1"))
    assert not matches(stored("sid-1", "sub-2"))
