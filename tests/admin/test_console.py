"""The admin console under /admin/: admins only, real numbers, revocation that reaches apps.

Through HTTP on SQLite and PostgreSQL: every form is a real POST with the page's CSRF token.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import audit
from idp import db
from idp.models.user import User
from idp.settings import get_settings
from tests.account.conftest import LAPTOP
from tests.account.conftest import PHONE
from tests.account.conftest import is_signed_in
from tests.account.conftest import login_states
from tests.account.conftest import sign_in
from tests.admin.conftest import ADMIN_PASSWORD
from tests.admin.conftest import post
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml
from tests.helpers.forms import csrf_token
from tests.test_pages import assert_idp_page

PAGES = {
    "/admin/": "Admin dashboard",
    "/admin/users": "Users",
    "/admin/apps": "Apps",
    "/admin/sessions": "Sessions",
    "/admin/tokens": "Personal access tokens",
    "/admin/audit": "Audit log",
    "/admin/keys": "Signing keys",
}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


def text(response: Any) -> str:
    return unescape(response.get_data(as_text=True))


def acted_by(app: Flask, event: str) -> list[Any]:
    """The acting admin of each audit row of ``event``."""
    return [row.details.get("actor_user_id") for row in rx.audit_events(app, event)]


def keys_state(app: Flask) -> list[str]:
    from idp.keys import service as keys

    with app.app_context():
        return [info.kid for info in keys.list_keys()]


def test_the_console_is_for_admins_only(
    app: Flask, http: FlaskClient, user: TestUser, console: FlaskClient
) -> None:
    for path, heading in PAGES.items():
        anonymous = http.get(path)
        assert anonymous.status_code == 302
        assert anonymous.headers["Location"] == f"/login?{urlencode_next(path)}"
        assert_idp_page(console.get(path), heading)
    alice = sign_in(app, user, PHONE)
    for path in PAGES:
        refused = alice.get(path)
        assert refused.status_code == 403
        assert "This console is for administrators." in text(refused)
    # A non-admin's form is refused before anything happens, CSRF token or not.
    before = login_states(app)
    page = alice.get("/account/")
    refused = alice.post(
        "/admin/sessions", data={"csrf_token": csrf_token(page.data), "action": "revoke_all"}
    )
    assert refused.status_code == 403 and login_states(app) == before
    response = console.get("/admin/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in text(response)


def urlencode_next(path: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"next": path})


def bars(page: str, css_class: str) -> list[tuple[int, float]]:
    """The (count, height) of each bar of one series in the dashboard's inline SVG."""
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    svg = ET.fromstring(page[start:end])  # noqa: S314 (our own page, parsed in a test)
    return [
        (int(rect.get("data-count", "-1")), float(rect.get("height", "-1")))
        for rect in svg.iter(f"{SVG}rect")
        if rect.get("class") == css_class
    ]


def test_the_dashboard_counts_sessions_and_sign_ins_per_hour_from_the_audit_log(
    app: Flask, admin: TestUser, user: TestUser, clock: Clock
) -> None:
    wrong = AuthActions(app.test_client())
    wrong.login(user.email, "not the password")  # over 24 h ago: not counted
    clock.advance(hours=25)
    console = sign_in(app, admin, LAPTOP)
    sign_in(app, user, PHONE)
    for _ in range(2):
        assert wrong.login(user.email, "wrong again").status_code == 401
    clock.advance(hours=2)
    bob = make_user(app, "bob@example.com", "bob's long password")
    sign_in(app, bob, PHONE)
    notes = oidc.register(app, "Notes")
    sp_settings = saml.sp_settings(console)
    saml.register(app, sp_settings)

    page = text(console.get("/admin/"))

    assert '<strong id="active-sessions">3</strong>' in page
    assert '<strong id="logins">3</strong>' in page
    assert '<strong id="failures">2</strong>' in page
    ok, bad = bars(page, "bar-ok"), bars(page, "bar-bad")
    assert len(ok) == len(bad) == 24
    # The last bar is this hour (bob); two hours earlier, the admin and alice, and 2 failures.
    assert [count for count, _ in ok] == [0] * 21 + [2, 0, 1]
    assert [count for count, _ in bad] == [0] * 21 + [2, 0, 0]
    assert ok[21][1] == bad[21][1] == 2 * ok[23][1] > 0  # heights in proportion
    assert all(height == 0 for count, height in ok + bad if count == 0)
    assert "Notes" in page and notes.client_id in page and sp_settings["sp"]["entityId"] in page


def test_revoking_a_session_ends_it_and_reaches_its_apps(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient, receiver: rx.Receiver
) -> None:
    notes = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint())
    alice = sign_in(app, user, PHONE)
    tokens = rx.sign_in_to(alice, notes)
    sid = tokens["claims"]["sid"]
    page = text(console.get("/admin/sessions", query_string={"user": user.email}))
    assert sid in page and PHONE in page and notes.client_id in page

    response = post(console, "/admin/sessions", action="revoke", sid=sid)

    assert response.status_code == 303
    assert not is_signed_in(alice)
    rx.assert_tokens_dead(console, notes, tokens)
    assert rx.wait_for(lambda: len(receiver.tokens) == 1)
    claims = rx.verify_logout_token(console, receiver.tokens[0], notes, now=app_now(app))
    assert claims["sid"] == sid
    assert acted_by(app, "session_revoked") == [admin.id]
    assert sid not in text(console.get("/admin/sessions"))
    assert is_signed_in(console)


def app_now(app: Flask) -> Any:
    with app.app_context():
        return db.now()


def test_a_participant_without_back_channel_is_marked_not_reachable(
    app: Flask, user: TestUser, console: FlaskClient
) -> None:
    alice = sign_in(app, user, PHONE)
    rx.sign_in_to(alice, oidc.register(app, "Wiki"))  # no back-channel logout URI
    page = text(console.get("/admin/sessions"))
    assert "Wiki" not in page  # listed by client_id
    assert page.count("not reachable without the browser") == 1


def test_revoking_all_of_a_users_sessions_needs_a_recent_login(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient, clock: Clock
) -> None:
    alice_devices = [sign_in(app, user, agent) for agent in (PHONE, LAPTOP)]
    path = f"/admin/sessions?user={user.email}"
    clock.advance(minutes=11)
    before, kids = login_states(app), keys_state(app)

    for target, form in (("/admin/keys", {}), (path, {"action": "revoke_all"})):
        response = post(console, target, **form)
        assert response.status_code == 302
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login"
        assert parse_qs(location.query) == {
            "next": [target],
            "force": ["1"],
            "login_hint": [admin.email],
        }
    assert login_states(app) == before and keys_state(app) == kids
    assert all(is_signed_in(device) for device in alice_devices)

    again = reauthenticate(console, response.headers["Location"])
    assert again.status_code == 302 and again.headers["Location"] == path
    response = post(console, path, action="revoke_all")

    assert response.status_code == 303
    assert "2 session(s) of alice@example.com ended everywhere." in text(console.get(path))
    assert not any(is_signed_in(device) for device in alice_devices)
    assert acted_by(app, "session_revoked") == [admin.id, admin.id]
    assert post(console, "/admin/keys").status_code == 303
    assert len(keys_state(app)) > len(kids)
    assert set(acted_by(app, "key_rotated")) == {admin.id}
    assert is_signed_in(console)


def reauthenticate(http: FlaskClient, location: str) -> Any:
    """Follow the console's redirect to the login form and type the admin's password again."""
    page = http.get(location)
    assert page.status_code == 200 and 'name="force" value="1"' in text(page)
    form = dict(parse_qs(urlsplit(location).query))
    return http.post(
        "/login",
        data={
            "csrf_token": csrf_token(page.data),
            "username": form["login_hint"][0],
            "password": ADMIN_PASSWORD,
            "next": form["next"][0],
            "force": "1",
        },
    )


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    app: Flask, user: TestUser, console: FlaskClient
) -> None:
    alice = sign_in(app, user, PHONE)
    before, kids = login_states(app), keys_state(app)
    ((sid, _, _), _) = before
    for path, form in (
        ("/admin/sessions", {"action": "revoke", "sid": sid}),
        (f"/admin/sessions?user={user.email}", {"action": "revoke_all"}),
        ("/admin/users", {"action": "disable", "user_id": str(user.id)}),
        ("/admin/users", {"action": "delete", "user_id": str(user.id)}),
        ("/admin/keys", {}),
    ):
        for token in ({}, {"csrf_token": "forged"}):
            response = console.post(path, data={**form, **token})
            assert response.status_code == 400, path
            assert "did not come from this site" in text(response)
    assert login_states(app) == before and keys_state(app) == kids
    assert is_signed_in(alice)
    with app.app_context():
        row = db.get_session().get(User, user.id)
        assert row is not None and not row.is_disabled


def test_users_are_searched_paged_and_disabled(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient
) -> None:
    alice = sign_in(app, user, PHONE)
    for n in range(55):
        make_user(app, f"user{n:02}@example.org", "a long enough password", name=f"User {n}")
    found = text(console.get("/admin/users", query_string={"q": "Liddell"}))
    assert "alice@example.com" in found and "user01@example.org" not in found
    first = text(console.get("/admin/users"))
    assert first.count('name="user_id"') == 50 and "Next page" in first
    second_url = unescape(first.split('href="/admin/users?after=', 1)[1].split('"', 1)[0])
    second = text(console.get(f"/admin/users?after={second_url}"))
    assert second.count('name="user_id"') == 57 - 50 and "Next page" not in second

    response = post(console, "/admin/users", action="disable", user_id=str(user.id))

    assert response.status_code == 303
    assert not is_signed_in(alice)
    assert acted_by(app, "user_disabled") == [admin.id]
    assert post(console, "/admin/users", action="enable", user_id=str(user.id)).status_code == 303
    assert acted_by(app, "user_enabled") == [admin.id]
    assert f'href="/admin/sessions?user={user.email}"' in first


def test_deleting_a_user_needs_a_recent_login(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient, clock: Clock
) -> None:
    clock.advance(minutes=11)
    response = post(console, "/admin/users", action="delete", user_id=str(user.id))
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?")
    assert reauthenticate(console, response.headers["Location"]).status_code == 302
    response = post(console, "/admin/users", action="delete", user_id=str(user.id))
    assert response.status_code == 303
    with app.app_context():
        assert db.get_session().get(User, user.id) is None
    assert acted_by(app, "user_deleted") == [admin.id]


def test_apps_show_what_an_integrator_needs(app: Flask, console: FlaskClient) -> None:
    notes = oidc.register(app, "Notes")
    sp_settings = saml.sp_settings(console)
    saml.register(app, sp_settings)
    page = text(console.get("/admin/apps"))
    with app.app_context():
        issuer = get_settings().issuer
    assert f"{issuer}/.well-known/openid-configuration" in page
    assert f"{issuer}/saml/metadata" in page
    assert notes.client_id in page and notes.redirect_uri in page
    assert sp_settings["sp"]["entityId"] in page
    assert sp_settings["sp"]["assertionConsumerService"]["url"] in page
    assert "mail" in page and "urn:oid:0.9.2342.19200300.100.1.3" in page


def record(app: Flask, event: str, at_minutes: int, clock: Clock, **fields: Any) -> None:
    with app.app_context():
        audit.record(event, **fields)
        db.get_session().commit()
    clock.advance(minutes=at_minutes)


def test_the_audit_log_filters_by_user_type_and_time_and_pages(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient, clock: Clock
) -> None:
    start = clock.now
    for _ in range(3):
        record(app, "consent_granted", 1, clock, user_id=user.id)
    later = clock.now
    for _ in range(55):
        record(app, "token_issued", 0, clock, user_id=admin.id)
    record(app, "consent_granted", 0, clock, user_id=admin.id)

    def events(**query: str) -> list[str]:
        page = text(console.get("/admin/audit", query_string=query))
        return [line.split("</strong>")[0] for line in page.split("<p><strong>")[1:]]

    assert events(user=user.email) == ["consent_granted"] * 3 + ["user_created"]
    assert events(user=str(user.id), type="consent_granted") == ["consent_granted"] * 3
    assert events(type="consent_granted") == ["consent_granted"] * 4
    since = later.strftime("%Y-%m-%dT%H:%M")
    assert events(type="consent_granted", since=since) == ["consent_granted"]
    assert len(events(type="consent_granted", since=start.strftime("%Y-%m-%dT%H:%M"))) == 4
    first = text(console.get("/admin/audit", query_string={"type": "token_issued"}))
    assert first.count("<p><strong>token_issued") == 50
    next_url = unescape(first.split('class="button compact secondary" href="', 1)[1].split('"')[0])
    assert "type=token_issued" in next_url
    assert text(console.get(next_url)).count("<p><strong>token_issued") == 5
    for bad in ({"since": "yesterday"}, {"type": "DROP TABLE"}, {"user": "nobody@x.org"}):
        response = console.get("/admin/audit", query_string=bad)
        assert response.status_code == 400
        assert '<p class="error" role="alert">' in text(response)


def test_an_unknown_session_user_or_action_is_refused_and_changes_nothing(
    app: Flask, user: TestUser, admin: TestUser, console: FlaskClient
) -> None:
    sign_in(app, user, PHONE)
    before = login_states(app)
    assert post(console, "/admin/sessions", action="revoke", sid="nope").status_code == 404
    assert post(console, "/admin/users", action="disable", user_id="9999").status_code == 404
    assert console.get("/admin/sessions?user=nobody@example.org").status_code == 404
    assert post(console, "/admin/sessions", action="bogus").status_code == 400
    assert post(console, "/admin/users", action="bogus", user_id=str(user.id)).status_code == 400
    for action in ("disable", "delete"):  # not oneself: that would lock the admin out
        response = post(console, "/admin/users", action=action, user_id=str(admin.id))
        assert response.status_code == 400
    assert login_states(app) == before
    with app.app_context():
        assert db.get_session().scalar(select(User).where(User.is_disabled)) is None
        assert db.get_session().get(User, admin.id) is not None
