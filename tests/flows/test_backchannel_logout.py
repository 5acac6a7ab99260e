"""Back-Channel Logout 1.0: logout tokens POSTed to a real loopback receiver, and retried."""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.sessions.logout import RETRY_WINDOW
from idp.sessions.logout import deliver_due
from tests.conftest import AuthActions
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import receiver as rx

CLAIMS = {"iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"}


@pytest.fixture
def receiver() -> Iterator[rx.Receiver]:
    with rx.running_receiver() as server:
        yield server


def retry(app: Flask) -> int:
    with app.app_context():
        return deliver_due()


def test_discovery_announces_back_channel_logout(http: FlaskClient) -> None:
    metadata = http.get("/.well-known/openid-configuration").get_json()
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True


def test_logout_token_is_a_signed_jwt_about_the_session(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint("/bc?tenant=1"))
    tokens = rx.sign_in_to(http, client)
    assert receiver.received == []

    assert auth.logout().status_code == 200

    (post,) = receiver.received
    assert post.path == "/bc?tenant=1"
    assert post.content_type == "application/x-www-form-urlencoded"
    assert set(post.form) == {"logout_token"}
    header = jwt.get_unverified_header(post.logout_token)
    assert header["typ"] == "logout+jwt"
    assert header["alg"] == "RS256"
    claims = rx.verify_logout_token(http, post.logout_token, client, now=clock.now)
    assert set(claims) == CLAIMS  # never a nonce (§2.4)
    assert claims["iss"] == "http://idp.test"
    assert claims["aud"] == client.client_id
    assert claims["sid"] == tokens["claims"]["sid"]
    assert claims["sub"] == tokens["claims"]["sub"]
    assert claims["iat"] == int(clock.now.timestamp())
    (delivery,) = rx.deliveries(app)
    assert delivery.rp == client.client_id
    assert delivery.attempts == 1
    assert delivery.delivered_at == clock.now
    assert delivery.next_attempt_at is None
    assert delivery.failed_at is None
    (audited,) = rx.audit_events(app, "backchannel_logout_delivered")
    assert audited.rp == client.client_id
    assert audited.sid == claims["sid"]
    assert audited.user_id == logged_in.id
    assert "logout_token" not in str(audited.details)
    rx.assert_tokens_dead(http, client, tokens)


def test_logout_token_uses_the_client_id_token_alg(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(
        app, backchannel_logout_uri=receiver.endpoint(), id_token_signed_response_alg="ES256"
    )
    tokens = rx.sign_in_to(http, client)
    auth.logout()
    (token,) = receiver.tokens
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    claims = rx.verify_logout_token(http, token, client, now=clock.now)
    assert claims["sid"] == tokens["claims"]["sid"]


def test_pairwise_client_gets_its_own_sub(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint(), subject_type="pairwise")
    tokens = rx.sign_in_to(http, client)
    auth.logout()
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, client, now=clock.now)
    assert claims["sub"] == tokens["claims"]["sub"]
    assert claims["sub"] != str(logged_in.id)


def test_two_clients_in_one_session_both_get_tokens(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    notes = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint("/notes"))
    wiki = oidc.register(app, "Wiki", backchannel_logout_uri=receiver.endpoint("/wiki"))
    notes_tokens = rx.sign_in_to(http, notes)
    wiki_tokens = rx.sign_in_to(http, wiki)
    assert notes_tokens["claims"]["sid"] == wiki_tokens["claims"]["sid"]

    auth.logout()

    by_path = {post.path: post.logout_token for post in receiver.received}
    assert set(by_path) == {"/notes", "/wiki"}
    assert len(receiver.received) == 2
    notes_claims = rx.verify_logout_token(http, by_path["/notes"], notes, now=clock.now)
    wiki_claims = rx.verify_logout_token(http, by_path["/wiki"], wiki, now=clock.now)
    assert notes_claims["sid"] == wiki_claims["sid"] == notes_tokens["claims"]["sid"]
    assert notes_claims["jti"] != wiki_claims["jti"]
    rx.assert_tokens_dead(http, notes, notes_tokens)
    rx.assert_tokens_dead(http, wiki, wiki_tokens)
    assert len(rx.audit_events(app, "backchannel_logout_delivered")) == 2


def test_a_client_that_never_joined_gets_nothing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
) -> None:
    joined = oidc.register(app, "Notes", backchannel_logout_uri=receiver.endpoint("/notes"))
    oidc.register(app, "Wiki", backchannel_logout_uri=receiver.endpoint("/wiki"))
    rx.sign_in_to(http, joined)

    auth.logout()

    assert [post.path for post in receiver.received] == ["/notes"]
    assert [row.rp for row in rx.deliveries(app)] == [joined.client_id]


def test_a_client_of_another_session_gets_nothing(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
) -> None:
    """The same user in another browser: that session, and its client, stay."""
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    other = app.test_client()
    assert AuthActions(other).login(logged_in.email, logged_in.password).status_code == 302
    other_tokens = rx.sign_in_to(other, client)

    auth.logout()

    assert receiver.received == []
    assert rx.deliveries(app) == []
    rx.assert_tokens_alive(other, client, other_tokens)


def test_a_client_without_backchannel_uri_still_loses_its_tokens(
    app: Flask, http: FlaskClient, logged_in: TestUser, auth: AuthActions
) -> None:
    client = oidc.register(app)
    tokens = rx.sign_in_to(http, client)
    auth.logout()
    assert rx.deliveries(app) == []
    rx.assert_tokens_dead(http, client, tokens)


def test_a_receiver_that_fails_once_is_retried_after_back_off(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    receiver.fail_next = 1
    logged_out_at = clock.now

    response = auth.logout()

    # The failure is the RP's problem: the user is logged out all the same.
    assert response.status_code == 200
    assert http.get("/").status_code == 302
    rx.assert_tokens_dead(http, client, tokens)
    (delivery,) = rx.deliveries(app)
    assert delivery.attempts == 1
    assert delivery.delivered_at is None and delivery.failed_at is None
    assert delivery.last_error == "HTTP 500"
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at > logged_out_at
    assert delivery.give_up_at == logged_out_at + RETRY_WINDOW
    (failed,) = rx.audit_events(app, "backchannel_logout_failed")
    assert failed.rp == client.client_id
    assert failed.details["attempts"] == 1
    assert rx.audit_events(app, "backchannel_logout_delivered") == []

    # Not yet due: nothing is sent again.
    assert retry(app) == 0
    assert len(receiver.received) == 1

    clock.now = delivery.next_attempt_at
    assert retry(app) == 1

    first, second = receiver.tokens
    first_claims = rx.verify_logout_token(http, first, client, now=logged_out_at)
    second_claims = rx.verify_logout_token(http, second, client, now=clock.now)
    assert second_claims["sid"] == first_claims["sid"] == tokens["claims"]["sid"]
    assert second_claims["jti"] != first_claims["jti"]
    (delivery,) = rx.deliveries(app)
    assert delivery.attempts == 2
    assert delivery.delivered_at == clock.now
    assert delivery.next_attempt_at is None
    (delivered,) = rx.audit_events(app, "backchannel_logout_delivered")
    assert delivered.details["attempts"] == 2
    # Delivered means done: later sweeps send nothing.
    clock.advance(hours=2)
    assert retry(app) == 0
    assert len(receiver.received) == 2


def test_back_off_grows_between_attempts(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    rx.sign_in_to(http, client)
    receiver.fail_next = 3
    auth.logout()
    waits = []
    for _ in range(2):
        (delivery,) = rx.deliveries(app)
        assert delivery.next_attempt_at is not None
        waits.append(delivery.next_attempt_at - clock.now)
        clock.now = delivery.next_attempt_at
        assert retry(app) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.next_attempt_at is not None
    waits.append(delivery.next_attempt_at - clock.now)
    assert waits[0] < waits[1] < waits[2]
    assert delivery.attempts == 3


def test_a_receiver_that_always_fails_is_abandoned_after_the_retry_window(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    rx.sign_in_to(http, client)
    receiver.fail_next = -1
    started = clock.now
    auth.logout()

    for _ in range(100):
        (delivery,) = rx.deliveries(app)
        if delivery.next_attempt_at is None:
            break
        clock.now = delivery.next_attempt_at
        assert retry(app) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.failed_at is not None
    assert delivery.delivered_at is None
    assert started < delivery.failed_at <= started + RETRY_WINDOW
    assert delivery.attempts == len(receiver.received) > 2
    (abandoned,) = rx.audit_events(app, "backchannel_logout_abandoned")
    assert abandoned.rp == client.client_id
    assert abandoned.details["attempts"] == delivery.attempts
    assert len(rx.audit_events(app, "backchannel_logout_failed")) == delivery.attempts - 1
    assert rx.audit_events(app, "backchannel_logout_delivered") == []

    # Abandoned is final.
    clock.advance(hours=3)
    assert retry(app) == 0
    assert len(receiver.received) == delivery.attempts


def test_a_slow_receiver_times_out_and_is_retried(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    receiver.delay = 10.0

    response = auth.logout()

    assert response.status_code == 200
    assert len(receiver.received) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.last_error is not None
    assert "timed out" in delivery.last_error
    assert delivery.attempts == 1 and delivery.next_attempt_at is not None
    rx.assert_tokens_dead(http, client, tokens)

    receiver.delay = 0.0
    clock.now = delivery.next_attempt_at
    assert retry(app) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at == clock.now


def test_a_receiver_answering_byte_by_byte_does_not_hold_the_logout(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
) -> None:
    # Every byte arrives within a read timeout, the whole answer would take a minute: one
    # deadline for the whole POST ends the user's wait, and the retry queue takes over.
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    receiver.drip = 0.2
    receiver.body = b"x" * 200

    response = auth.logout()

    assert response.status_code == 200
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is None and delivery.failed_at is None
    assert delivery.last_error == "timed out"
    assert delivery.attempts == 1 and delivery.next_attempt_at is not None
    assert rx.wait_for(lambda: receiver.abandoned == 1)
    rx.assert_tokens_dead(http, client, tokens)


def test_a_redirect_is_not_followed_nor_taken_for_delivery(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
) -> None:
    with rx.running_receiver() as elsewhere:
        client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
        rx.sign_in_to(http, client)
        receiver.redirect_to = elsewhere.endpoint()

        assert auth.logout().status_code == 200

        assert elsewhere.received == []
    assert len(receiver.received) == 1
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is None
    assert delivery.last_error == "HTTP 302"
    assert delivery.next_attempt_at is not None


def test_a_self_registered_receiver_on_loopback_is_never_called(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
) -> None:
    # Registration refuses internal addresses; the fetch checks again (a name may resolve
    # elsewhere by now, or the row predates the check).
    from sqlalchemy import select

    from idp import db
    from idp.models.oidc import OAuthClient

    client = oidc.register(
        app, backchannel_logout_uri="https://rp.example/backchannel", self_registered=True
    )
    with app.app_context():
        row = db.get_session().scalars(select(OAuthClient)).one()
        row.backchannel_logout_uri = receiver.endpoint().replace(
            "http://127.0.0.1", "https://localhost"
        )
        db.get_session().commit()
    rx.sign_in_to(http, client)

    assert auth.logout().status_code == 200

    assert receiver.received == []
    (delivery,) = rx.deliveries(app)
    assert delivery.delivered_at is None
    assert delivery.last_error is not None and "not a public address" in delivery.last_error


def test_an_unreachable_receiver_is_recorded_not_raised(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
) -> None:
    with rx.running_receiver() as gone:
        uri = gone.endpoint()
    client = oidc.register(app, backchannel_logout_uri=uri)
    tokens = rx.sign_in_to(http, client)

    assert auth.logout().status_code == 200

    (delivery,) = rx.deliveries(app)
    assert delivery.attempts == 1
    assert delivery.last_error
    assert delivery.next_attempt_at is not None
    assert len(rx.audit_events(app, "backchannel_logout_failed")) == 1
    rx.assert_tokens_dead(http, client, tokens)


@pytest.mark.backends("postgresql")
def test_each_delivery_goes_to_one_retrier(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
    db_backend: str,
) -> None:
    """Several IdP processes sweep at once: a row one holds is skipped by the others."""
    from sqlalchemy import select

    from idp import db
    from idp.models.login import LogoutDelivery

    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    rx.sign_in_to(http, client)
    receiver.fail_next = 1
    auth.logout()
    (delivery,) = rx.deliveries(app)
    assert delivery.next_attempt_at is not None
    clock.now = delivery.next_attempt_at
    with app.app_context():
        holder = db.get_session()
        holder.scalars(select(LogoutDelivery).with_for_update(of=LogoutDelivery)).all()
        assert retry(app) == 0  # another app context = another process's connection
        holder.rollback()
    assert len(receiver.received) == 1
    assert retry(app) == 1
    assert len(receiver.received) == 2


def test_a_sweep_takes_over_a_delivery_whose_first_attempt_never_ran(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    """The worker that ended the session died before sending: the queue still delivers."""
    from idp.sessions.logout import get_registry
    from idp.sessions.service import get_login_by_sid
    from idp.sessions.service import revoke_login

    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    tokens = rx.sign_in_to(http, client)
    registry = get_registry(app)
    hooks = list(registry.after_commit)
    registry.after_commit.clear()
    try:
        with app.app_context():
            login = get_login_by_sid(tokens["claims"]["sid"])
            assert login is not None and revoke_login(login, "admin_revoked")
    finally:
        registry.after_commit[:] = hooks
    assert receiver.received == []
    rx.assert_tokens_dead(http, client, tokens)
    # Not before the ending worker's own attempt would have been made.
    assert retry(app) == 0
    clock.advance(seconds=5)
    assert retry(app) == 1
    (token,) = receiver.tokens
    claims = rx.verify_logout_token(http, token, client, now=clock.now)
    assert claims["sid"] == tokens["claims"]["sid"]
    (delivery,) = rx.deliveries(app)
    assert delivery.attempts == 1 and delivery.delivered_at == clock.now


def test_a_sweep_right_after_logout_sends_nothing_twice(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    auth: AuthActions,
    receiver: rx.Receiver,
    clock: Clock,
) -> None:
    client = oidc.register(app, backchannel_logout_uri=receiver.endpoint())
    rx.sign_in_to(http, client)
    auth.logout()
    assert retry(app) == 0
    clock.advance(seconds=5)
    assert retry(app) == 0
    assert len(receiver.received) == 1
