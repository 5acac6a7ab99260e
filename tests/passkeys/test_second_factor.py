"""A passkey as the second factor of a password login: the API the login's second step calls."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.passkey import Passkey
from idp.passkeys import service as passkeys
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.authenticator import SoftAuthenticator
from tests.helpers.authenticator import enrol
from tests.helpers.authenticator import unb64url


def counters(app: Flask) -> dict[int, int]:
    with app.app_context():
        rows = db.get_session().execute(select(Passkey.user_id, Passkey.sign_count))
        return {user_id: count for user_id, count in rows}


@pytest.fixture
def keys(app: Flask, http: FlaskClient, logged_in: TestUser) -> dict[str, SoftAuthenticator]:
    """Alice's and Bob's passkeys, each enrolled through /account/security."""
    alice = SoftAuthenticator()
    assert enrol(http, alice).status_code == 303
    bob = make_user(app, "bob@example.com", "bob's long password")
    other = app.test_client()
    assert AuthActions(other).login(bob.email, bob.password).status_code == 302
    bobs = SoftAuthenticator()
    assert enrol(other, bobs).status_code == 303
    return {"alice": alice, "bob": bobs}


def test_the_users_passkey_confirms_the_login(
    app: Flask, keys: dict[str, SoftAuthenticator], logged_in: TestUser
) -> None:
    with app.test_request_context():
        options = json.loads(passkeys.begin_authentication(logged_in.id))
        allowed = [unb64url(item["id"]) for item in options["allowCredentials"]]
        assert allowed == [keys["alice"].credential_id]
        answer = json.dumps(keys["alice"].get(options))
        assert passkeys.verify_assertion_for_user(logged_in.id, answer) == ["hwk", "mfa"]
        # Used once: the same answer again is refused.
        with pytest.raises(passkeys.PasskeyError):
            passkeys.verify_assertion_for_user(logged_in.id, answer)
    assert counters(app)[logged_in.id] == 1


def test_another_users_passkey_is_refused(
    app: Flask, keys: dict[str, SoftAuthenticator], logged_in: TestUser
) -> None:
    before = counters(app)
    with app.test_request_context():
        options = json.loads(passkeys.begin_authentication(logged_in.id))
        answer = json.dumps(keys["bob"].get(options))
        with pytest.raises(passkeys.PasskeyError, match="unknown_credential"):
            passkeys.verify_assertion_for_user(logged_in.id, answer)
    assert counters(app) == before


def test_a_challenge_started_for_another_user_is_refused(
    app: Flask, keys: dict[str, SoftAuthenticator], logged_in: TestUser
) -> None:
    bob_id = next(user_id for user_id in counters(app) if user_id != logged_in.id)
    with app.test_request_context():
        options = json.loads(passkeys.begin_authentication(bob_id))
        answer = json.dumps(keys["alice"].get(options))
        with pytest.raises(passkeys.PasskeyError, match="challenge"):
            passkeys.verify_assertion_for_user(logged_in.id, answer)
    assert counters(app)[logged_in.id] == 0


def test_resetting_a_users_factors_deletes_their_passkeys_only(
    app: Flask, keys: dict[str, SoftAuthenticator], logged_in: TestUser
) -> None:
    with app.test_request_context():
        assert passkeys.count_for_user(logged_in.id) == 1
        assert passkeys.delete_all_for_user(logged_in.id) == 1
        assert passkeys.count_for_user(logged_in.id) == 0
    assert list(counters(app)) != [] and logged_in.id not in counters(app)


def test_deleting_a_user_deletes_their_passkeys(
    app: Flask, keys: dict[str, SoftAuthenticator], logged_in: TestUser
) -> None:
    with app.app_context():
        from idp.users import service as users

        users.delete_user(users.require_user(logged_in.id))
    assert logged_in.id not in counters(app) and len(counters(app)) == 1
