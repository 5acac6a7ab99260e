"""The back-channel logout endpoint of Notes and Wiki refuses what the IdP did not sign.

The accepted case needs a token signed by the IdP, so it belongs to the logout flow tests;
here every token is well formed for the signed-in session except for one flaw.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.demo.conftest import BACKCHANNEL_EVENT
from tests.demo.conftest import DemoApp
from tests.demo.conftest import LiveIdp
from tests.demo.conftest import sign_in
from tests.demo.conftest import stored_user

OUR_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims_for(idp: LiveIdp, app: DemoApp, user: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": idp.url,
        "aud": app.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": user["sub"],
        "sid": user["sid"],
        "events": {BACKCHANNEL_EVENT: {}},
    }


def idp_kid(idp: LiveIdp) -> str:
    keys = requests.get(f"{idp.url}/jwks", timeout=10).json()["keys"]
    kid: str = next(key["kid"] for key in keys if key["kty"] == "RSA")
    return kid


def forged_with_the_idps_kid(idp: LiveIdp, claims: dict[str, Any]) -> str:
    headers = {"kid": idp_kid(idp), "typ": "logout+jwt"}
    return jwt.encode(claims, OUR_KEY, algorithm="RS256", headers=headers)


def unsigned(idp: LiveIdp, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none", headers={"typ": "logout+jwt"})


def signed_with_the_client_id(idp: LiveIdp, claims: dict[str, Any]) -> str:
    # An HMAC "signed" with a value the attacker knows: the RP only takes the IdP's keys.
    return jwt.encode(claims, "notes" * 8, algorithm="HS256", headers={"typ": "logout+jwt"})


def not_a_jwt(idp: LiveIdp, claims: dict[str, Any]) -> str:
    return "this.is.not-a-jwt"


FORGERIES: dict[str, Callable[[LiveIdp, dict[str, Any]], str]] = {
    "foreign signature": forged_with_the_idps_kid,
    "alg none": unsigned,
    "HS256": signed_with_the_client_id,
    "garbage": not_a_jwt,
}


@pytest.mark.parametrize("app_name", ["notes", "wiki"])
@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_logout_token_not_signed_by_the_idp_is_refused(
    request: pytest.FixtureRequest,
    idp_server: LiveIdp,
    browser: requests.Session,
    app_name: str,
    forgery: Callable[[LiveIdp, dict[str, Any]], str],
) -> None:
    app: DemoApp = request.getfixturevalue(app_name)
    sign_in(browser, app)
    user = stored_user(app, browser)
    assert user is not None and user["sid"]

    response = requests.post(
        f"{app.url}/backchannel-logout",
        data={"logout_token": forgery(idp_server, claims_for(idp_server, app, user))},
        timeout=30,
    )

    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json()["error"] == "invalid_request"
    assert stored_user(app, browser) == user
    assert 'id="email">alice@example.com<' in browser.get(f"{app.url}/", timeout=30).text


def test_a_post_without_logout_token_is_refused(notes: DemoApp, browser: requests.Session) -> None:
    sign_in(browser, notes)
    before = notes.store.count()

    response = requests.post(f"{notes.url}/backchannel-logout", data={}, timeout=30)

    assert response.status_code == 400
    assert json.loads(response.text) == {
        "error": "invalid_request",
        "error_description": "logout_token is missing",
    }
    assert notes.store.count() == before
    assert stored_user(notes, browser) is not None


def test_the_endpoint_takes_only_post(notes: DemoApp) -> None:
    response = requests.get(f"{notes.url}/backchannel-logout", timeout=30)

    assert response.status_code == 405
