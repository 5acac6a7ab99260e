"""Unusual token use: each rule fires on its pattern, not on normal use; notify or revoke."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.errors import ConfigurationError
from idp.models import AuditEvent
from idp.models.token import SecurityNotice
from idp.outbox import get_outbox
from idp.settings import load_settings
from idp.users.service import disable_user
from idp.users.service import require_user_by_email
from idp.users.service import set_password
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.receiver import Receiver
from tests.helpers.receiver import running_receiver
from tests.tokens.conftest import bearer
from tests.tokens.conftest import create_pat
from tests.tokens.conftest import list_pats

HOME = "127.0.0.9"  # the test client logs in from 127.0.0.1: the same /24
ELSEWHERE = "203.0.113.9"
WEBHOOK_SECRET = "webhook-secret-for-tests"


def call(http: FlaskClient, token: str, ip: str) -> int:
    response = http.get("/userinfo", headers=bearer(token), environ_base={"REMOTE_ADDR": ip})
    return response.status_code


def notices(app: Flask) -> list[tuple[str, str, str | None, str]]:
    with app.app_context():
        rows = db.get_session().scalars(select(SecurityNotice).order_by(SecurityNotice.id))
        return [(n.rule, n.token_kind, n.network, n.action) for n in rows]


def unusual_use_events(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == "token_unusual_use")
        return [event.details for event in db.get_session().scalars(query)]


def pat_for(app: Flask, user: TestUser) -> dict[str, Any]:
    return create_pat(app, user.email, "--scope", "openid", "--expires-in", "30")


def is_revoked(app: Flask, pat: dict[str, Any]) -> bool:
    [row] = [row for row in list_pats(app) if row["id"] == pat["id"]]
    return row["revoked_at"] is not None


@pytest.fixture
def revoke_all(settings: dict[str, Any]) -> None:
    settings["token_rule_new_network"] = "revoke"
    settings["token_rule_many_networks"] = "revoke"
    settings["token_rule_after_account_change"] = "revoke"


# -- a new network while the owner is logged in from another one ---------------------------------


def test_new_network_notifies_the_owner_once(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    assert call(http, pat["token"], HOME) == 200  # the owner's own network: normal
    assert notices(app) == []
    assert call(http, pat["token"], ELSEWHERE) == 200  # notify: the call still works
    assert call(http, pat["token"], "203.0.113.77") == 200  # that network is known now
    assert notices(app) == [("new_network", "pat", "203.0.113.0/24", "notified")]
    [event] = unusual_use_events(app)
    assert event["rule"] == "new_network" and event["token_id"] == str(pat["id"])
    assert pat["token"].startswith(event["prefix"])
    assert pat["token"] not in json.dumps(event)
    page = http.get("/account/").get_data(as_text=True)
    assert "Security notice" in page and "never been used from" in page
    assert not is_revoked(app, pat)


@pytest.mark.usefixtures("revoke_all")
def test_new_network_revokes_when_set_to(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    assert call(http, pat["token"], HOME) == 200
    assert not is_revoked(app, pat)
    assert call(http, pat["token"], ELSEWHERE) == 401  # revoked on this very use
    assert is_revoked(app, pat)
    assert call(http, pat["token"], HOME) == 401
    assert notices(app) == [("new_network", "pat", "203.0.113.0/24", "revoked")]


def test_new_network_is_quiet_when_the_owner_is_not_logged_in(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    pat = pat_for(app, user)
    assert call(http, pat["token"], HOME) == 200
    assert call(http, pat["token"], ELSEWHERE) == 200
    assert notices(app) == []


# -- many networks within an hour ----------------------------------------------------------------


def test_many_networks_within_an_hour(app: Flask, http: FlaskClient, user: TestUser) -> None:
    pat = pat_for(app, user)
    for network in range(1, 4):  # three networks: the default threshold, not above it
        assert call(http, pat["token"], f"198.51.{network}.7") == 200
        assert call(http, pat["token"], f"198.51.{network}.8") == 200
    assert notices(app) == []
    assert call(http, pat["token"], "198.51.4.7") == 200
    assert call(http, pat["token"], "198.51.5.7") == 200  # told once per hour
    assert notices(app) == [("many_networks", "pat", "198.51.4.0/24", "notified")]
    assert not is_revoked(app, pat)


def test_one_network_per_hour_is_normal(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    pat = pat_for(app, user)
    for network in range(1, 8):
        assert call(http, pat["token"], f"198.51.{network}.7") == 200
        clock.advance(hours=1)
    assert notices(app) == []


@pytest.mark.usefixtures("revoke_all")
def test_many_networks_revokes_a_pat(app: Flask, http: FlaskClient, user: TestUser) -> None:
    pat = pat_for(app, user)
    for network in range(1, 4):
        assert call(http, pat["token"], f"198.51.{network}.7") == 200
    assert call(http, pat["token"], "198.51.4.7") == 401
    assert is_revoked(app, pat)
    assert notices(app) == [("many_networks", "pat", "198.51.4.0/24", "revoked")]


def refresh(http: FlaskClient, client: oidc.Client, token: str, ip: str) -> Any:
    return http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=client.basic_auth,
        environ_base={"REMOTE_ADDR": ip},
    )


@pytest.mark.usefixtures("revoke_all")
def test_many_networks_revokes_a_refresh_family(
    settings: dict[str, Any], app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app)
    api = oidc.register(
        app, "API", redirect_uris=["https://api.example.com/unused"], is_resource_server=True
    )
    tokens = oidc.issue_tokens(http, client, "openid offline_access")
    current = tokens["refresh_token"]
    for network in range(1, 4):  # rotation keeps the family: still one token to the rules
        response = refresh(http, client, current, f"198.51.{network}.7")
        assert response.status_code == 200, response.data
        current = response.get_json()["refresh_token"]
        latest_access = response.get_json()["access_token"]
    response = refresh(http, client, current, "198.51.4.7")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    introspected = http.post("/introspect", data={"token": latest_access}, auth=api.basic_auth)
    assert introspected.get_json() == {"active": False}
    assert notices(app) == [("many_networks", "refresh", "198.51.4.0/24", "revoked")]


# -- use after the owner was disabled or changed password ----------------------------------------


def change_password(app: Flask, email: str) -> None:
    with app.app_context():
        set_password(require_user_by_email(email), "a brand new long passphrase")
        db.get_session().commit()


def test_use_after_a_password_change_notifies(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    before = pat_for(app, user)
    assert call(http, before["token"], HOME) == 200
    clock.advance(minutes=1)
    change_password(app, user.email)
    clock.advance(minutes=1)
    after = create_pat(app, user.email, "--scope", "openid", "--expires-in", "7", name="new")
    assert call(http, after["token"], HOME) == 200  # made after the change: normal
    assert notices(app) == []
    assert call(http, before["token"], HOME) == 200  # notify: GitHub's keep-working default
    assert call(http, before["token"], HOME) == 200
    assert notices(app) == [("after_account_change", "pat", "127.0.0.0/24", "notified")]


@pytest.mark.usefixtures("revoke_all")
def test_use_after_a_password_change_revokes_when_set_to(
    app: Flask, http: FlaskClient, user: TestUser, clock: Clock
) -> None:
    pat = pat_for(app, user)
    clock.advance(minutes=1)
    change_password(app, user.email)
    assert call(http, pat["token"], HOME) == 401
    assert is_revoked(app, pat)
    assert notices(app) == [("after_account_change", "pat", "127.0.0.0/24", "revoked")]


@pytest.mark.usefixtures("revoke_all")
def test_use_after_the_owner_was_disabled(app: Flask, http: FlaskClient, user: TestUser) -> None:
    pat = pat_for(app, user)
    with app.app_context():
        disable_user(user.email)
    assert call(http, pat["token"], ELSEWHERE) == 401  # refused in any case
    assert is_revoked(app, pat)
    assert notices(app) == [("after_account_change", "pat", "203.0.113.0/24", "revoked")]


# -- a refresh-token replay ------------------------------------------------------------------------


def test_refresh_replay_revokes_the_family_and_notifies(
    app: Flask, http: FlaskClient, logged_in: TestUser, clock: Clock
) -> None:
    client = oidc.register(app)
    tokens = oidc.issue_tokens(http, client, "openid offline_access")
    first = refresh(http, client, tokens["refresh_token"], HOME)
    assert first.status_code == 200
    assert notices(app) == []
    clock.advance(seconds=30)  # past the confidential client's retry grace: a replay
    replay = refresh(http, client, tokens["refresh_token"], ELSEWHERE)
    assert replay.status_code == 400
    newest = refresh(http, client, first.get_json()["refresh_token"], HOME)
    assert newest.status_code == 400  # the family is revoked
    assert notices(app) == [("refresh_replay", "refresh", "203.0.113.0/24", "revoked")]


# -- telling the owner and the admins ------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=email_policy).parsebytes(envelope.content)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def mailbox(settings: dict[str, Any]) -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings["smtp_url"] = f"smtp://127.0.0.1:{controller.port}"
    try:
        yield box
    finally:
        controller.stop()


def sent(app: Flask) -> None:
    """Wait for the outbox to send what the requests queued (off their path)."""
    assert get_outbox(app).flush(timedelta(seconds=10))


def test_the_owner_gets_an_email(
    mailbox: Mailbox, app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    assert call(http, pat["token"], ELSEWHERE) == 200
    sent(app)
    [message] = mailbox.messages
    assert message["To"] == logged_in.email
    assert message["From"] == "idp@idp.test"
    assert message["Subject"] == "Unusual use of one of your tokens"
    text = message.get_content()
    assert "203.0.113.0/24" in text and "http://idp.test/account/tokens" in text
    assert pat["token"] not in message.as_string()


@pytest.fixture
def receiver(settings: dict[str, Any]) -> Iterator[Receiver]:
    with running_receiver() as receiver:
        settings["security_webhook_url"] = receiver.endpoint("/security")
        settings["security_webhook_secret"] = WEBHOOK_SECRET
        yield receiver


def test_admins_get_a_signed_webhook(
    receiver: Receiver, app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    assert call(http, pat["token"], ELSEWHERE) == 200
    sent(app)
    [hook] = receiver.received
    assert hook.path == "/security" and hook.content_type == "application/json"
    fields = dict(part.split("=", 1) for part in hook.headers["X-Idp-Signature"].split(","))
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), fields["t"].encode() + b"." + hook.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert abs(time.time() - int(fields["t"])) < 60  # a receiver refuses stale timestamps
    event = json.loads(hook.body)
    assert event["type"] == "token_unusual_use" and event["rule"] == "new_network"
    assert event["user"] == logged_in.email and event["token_id"] == str(pat["id"])
    assert event["network"] == "203.0.113.0/24" and event["action"] == "notified"
    assert pat["token"] not in hook.body.decode()


def test_the_owner_dismisses_the_notices(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    assert call(http, pat["token"], ELSEWHERE) == 200
    page = http.get("/account/tokens")
    assert "Security notice" in page.get_data(as_text=True)
    token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = http.post("/account/notices", data={"csrf_token": token})
    assert response.status_code == 303
    assert "security-notices" not in http.get("/account/").get_data(as_text=True)
    assert len(notices(app)) == 1  # kept, only marked seen


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("token_rule_new_network", "delete"),
        ("token_many_networks_threshold", 0),
        ("smtp_url", "http://mail.example.com"),
        ("security_webhook_url", "ftp://hooks.example.com/idp"),
    ],
)
def test_bad_rule_settings_are_refused(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        load_settings({name: value})


def test_a_slow_mail_server_does_not_hold_the_request(
    mailbox: Mailbox, app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    pat = pat_for(app, logged_in)
    gate = threading.Event()
    get_outbox(app).submit("a stalled delivery", lambda: gate.wait(10))  # the worker is busy
    try:
        assert call(http, pat["token"], ELSEWHERE) == 200  # answered while the e-mail waits
        assert notices(app) == [("new_network", "pat", "203.0.113.0/24", "notified")]
        assert mailbox.messages == []
    finally:
        gate.set()
    sent(app)
    [message] = mailbox.messages
    assert message["To"] == logged_in.email


def test_a_refresh_replay_is_mailed_to_the_owner_and_sent_to_the_webhook(
    mailbox: Mailbox,
    receiver: Receiver,
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    clock: Clock,
) -> None:
    client = oidc.register(app)
    tokens = oidc.issue_tokens(http, client, "openid offline_access")
    assert refresh(http, client, tokens["refresh_token"], HOME).status_code == 200
    clock.advance(seconds=30)
    assert refresh(http, client, tokens["refresh_token"], ELSEWHERE).status_code == 400
    sent(app)
    [message] = mailbox.messages
    assert message["To"] == logged_in.email
    assert "used twice" in message.get_content() and "revoked" in message.get_content()
    [hook] = receiver.received
    event = json.loads(hook.body)
    assert (event["rule"], event["token_kind"], event["action"]) == (
        "refresh_replay",
        "refresh",
        "revoked",
    )
    assert tokens["refresh_token"] not in hook.body.decode()
    assert tokens["refresh_token"] not in message.as_string()
