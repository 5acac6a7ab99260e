"""Enrolling, renaming and removing passkeys on /account/security (WebAuthn §7.1)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from idp.models.passkey import Passkey
from idp.models.passkey import PasskeyChallenge
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers.authenticator import SoftAuthenticator
from tests.helpers.authenticator import enrol
from tests.helpers.authenticator import passkey_login
from tests.helpers.authenticator import unb64url
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count


def passkeys(app: Flask) -> list[tuple[Any, ...]]:
    with app.app_context():
        rows = db.get_session().execute(
            select(Passkey.user_id, Passkey.name, Passkey.sign_count).order_by(Passkey.id)
        )
        return [tuple(row) for row in rows]


def events(app: Flask, name: str) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == name)
        return list(db.get_session().scalars(query))


def test_options_exclude_existing_credentials_and_prefer_discoverable_and_uv(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    first = SoftAuthenticator()
    assert enrol(http, first).status_code == 303
    token = csrf_token(http.get("/account/security").data)
    response = http.post("/account/security/passkeys/options", data={"csrf_token": token})
    options = response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert options["rp"] == {"id": "idp.test", "name": "idp"}
    assert options["user"]["name"] == logged_in.email
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert [unb64url(item["id"]) for item in options["excludeCredentials"]] == [first.credential_id]
    assert len(unb64url(options["challenge"])) >= 16
    # The user handle is the random subject, never the address.
    assert logged_in.email.encode() not in unb64url(options["user"]["id"])


def test_several_named_passkeys_are_listed_renamed_and_removed(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    response = enrol(http, SoftAuthenticator(), name="Work laptop")
    assert response.status_code == 303 and response.headers["Location"] == "/account/security"
    assert enrol(http, SoftAuthenticator(), name="Phone").status_code == 303
    page = http.get("/account/security").get_data(as_text=True)
    assert "Work laptop" in page and "Phone" in page and "added. You can sign in" in page
    assert [row[1] for row in passkeys(app)] == ["Work laptop", "Phone"]
    with app.app_context():
        first, second = db.get_session().scalars(select(Passkey.id).order_by(Passkey.id))
    token = csrf_token(page)
    renamed = http.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "action": "rename", "id": str(first), "name": "Desk"},
    )
    assert renamed.status_code == 303
    removed = http.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "action": "remove", "id": str(second)},
    )
    assert removed.status_code == 303
    assert [row[1] for row in passkeys(app)] == ["Desk"]
    assert [event.details["passkey_id"] for event in events(app, "passkey_removed")] == [second]


def test_another_users_passkey_cannot_be_renamed_or_removed(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    other = app.test_client()
    bob = make_user(app, "bob@example.com", "bob's long password")
    assert AuthActions(other).login(bob.email, bob.password).status_code == 302
    assert enrol(other, SoftAuthenticator(), name="Bob's key").status_code == 303
    with app.app_context():
        bobs = db.get_session().scalar(select(Passkey.id))
    token = csrf_token(http.get("/account/security").data)
    for action in ("rename", "remove"):
        response = http.post(
            "/account/security/passkeys",
            data={"csrf_token": token, "action": action, "id": str(bobs), "name": "Mine"},
        )
        assert response.status_code == 404
    assert passkeys(app) == [(bob.id, "Bob's key", 0)]


def test_every_post_needs_the_csrf_token(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    for path in ("/account/security/passkeys/options", "/account/security/passkeys"):
        response = http.post(path, data={"action": "add", "csrf_token": "forged"})
        assert response.status_code == 400
    assert count(app, PasskeyChallenge) == 0 and count(app, Passkey) == 0


def test_adding_or_removing_needs_a_recent_login(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    authenticator = SoftAuthenticator()
    assert enrol(http, authenticator).status_code == 303
    clock.advance(minutes=11)
    page = http.get("/account/security").get_data(as_text=True)
    assert "confirm it is you" in page and 'data-passkey="create"' not in page
    token = csrf_token(page)
    started = http.post("/account/security/passkeys/options", data={"csrf_token": token})
    assert started.status_code == 403
    assert started.get_json()["location"].startswith("/login?")
    with app.app_context():
        passkey_id = db.get_session().scalar(select(Passkey.id))
    removed = http.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "action": "remove", "id": str(passkey_id)},
    )
    assert removed.status_code == 302 and "force=1" in removed.headers["Location"]
    added = http.post(
        "/account/security/passkeys",
        data={"csrf_token": token, "action": "add", "name": "Late", "credential": "{}"},
    )
    assert added.status_code == 302 and "force=1" in added.headers["Location"]
    assert count(app, Passkey) == 1
    # Signing in again with the passkey itself is a recent login.
    assert passkey_login(http, authenticator, force=True).status_code == 302
    assert 'data-passkey="create"' in http.get("/account/security").get_data(as_text=True)


def test_a_challenge_is_single_use(app: Flask, http: FlaskClient, logged_in: TestUser) -> None:
    authenticator = SoftAuthenticator()
    token = csrf_token(http.get("/account/security").data)
    options = http.post("/account/security/passkeys/options", data={"csrf_token": token})
    credential = json.dumps(authenticator.create(options.get_json()))
    form = {"csrf_token": token, "action": "add", "name": "Key", "credential": credential}
    assert http.post("/account/security/passkeys", data=form).status_code == 303
    assert count(app, Passkey) == 1
    http.post("/account/security/passkeys", data=form)  # the same response again
    assert "could not be added" in http.get("/account/security").get_data(as_text=True)
    assert count(app, Passkey) == 1 and count(app, PasskeyChallenge) == 0
    failures = events(app, "passkey_registration_failed")
    assert [event.details["reason"] for event in failures] == ["no ceremony in progress"]


def test_an_expired_challenge_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    authenticator = SoftAuthenticator()
    token = csrf_token(http.get("/account/security").data)
    options = http.post("/account/security/passkeys/options", data={"csrf_token": token})
    clock.advance(minutes=5, seconds=1)
    credential = json.dumps(authenticator.create(options.get_json()))
    form = {"csrf_token": token, "action": "add", "name": "Key", "credential": credential}
    http.post("/account/security/passkeys", data=form)
    assert count(app, Passkey) == 0


def test_a_response_for_another_origin_or_a_broken_one_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    assert enrol(http, SoftAuthenticator(), origin="https://evil.example").status_code == 303
    token = csrf_token(http.get("/account/security").data)
    http.post("/account/security/passkeys/options", data={"csrf_token": token})
    for credential in ("", "{", json.dumps({"id": 1}), "[]", "x" * 70000):
        form = {"csrf_token": token, "action": "add", "name": "Key", "credential": credential}
        response = http.post("/account/security/passkeys", data=form)
        assert response.status_code == 303
    assert count(app, Passkey) == 0
    assert len(events(app, "passkey_registration_failed")) == 6


def test_a_credential_already_enrolled_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    authenticator = SoftAuthenticator()
    assert enrol(http, authenticator).status_code == 303
    enrol(http, authenticator, name="Again")
    assert [row[1] for row in passkeys(app)] == ["Laptop"]


def test_a_bad_name_is_refused_and_the_ceremony_stays_usable(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    response = enrol(http, SoftAuthenticator(), name="   ")
    assert response.status_code == 303
    assert "passkey name must be 1 to 100" in http.get("/account/security").get_data(as_text=True)
    assert count(app, Passkey) == 0


def test_the_security_page_is_signed_out_and_passes_its_csp(http: FlaskClient) -> None:
    response = http.post("/account/security/passkeys/options", data={"csrf_token": "x"})
    assert response.status_code == 401


def test_the_admin_console_shows_how_many_passkeys_a_user_has(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    assert enrol(http, SoftAuthenticator()).status_code == 303
    assert enrol(http, SoftAuthenticator()).status_code == 303
    admin = make_user(app, "admin@example.com", "admin password, long enough", is_admin=True)
    console = app.test_client()
    assert AuthActions(console).login(admin.email, admin.password).status_code == 302
    page = console.get("/admin/users").get_data(as_text=True)
    alice = page[page.index(logged_in.email) :]
    assert "2 passkeys" in alice[: alice.index("</li>")]
    assert "0 passkeys" in page[page.index(admin.email) :]
