"""A real loopback HTTP server recording back-channel logout tokens, and logout checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from tests.helpers import oidc


@dataclass
class Received:
    path: str
    content_type: str
    form: dict[str, list[str]]
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def logout_token(self) -> str:
        (token,) = self.form["logout_token"]
        return token


@dataclass
class Receiver:
    """What the server saw, and how it should misbehave next."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Answer HTTP 500 to this many POSTs (then 200); -1 means fail forever.
    fail_next: int = 0
    # Sleep this long before answering (a slow RP).
    delay: float = 0.0
    # Send the answer one byte per this many seconds (each read is quick, the whole slow).
    drip: float = 0.0
    # Answer with a redirect to this URL.
    redirect_to: str | None = None
    # The body of every answer (a JWK Set for GET, say).
    body: bytes = b""
    # Or the answer to each request body (a SOAP LogoutResponse to its LogoutRequest).
    answer: Callable[[bytes], bytes] | None = None
    # Answers the client hung up on before the last byte.
    abandoned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def endpoint(self, path: str = "/backchannel") -> str:
        return f"{self.url}{path}"

    @property
    def tokens(self) -> list[str]:
        with self.lock:
            return [item.logout_token for item in self.received]


def _handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_POST()

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with state.lock:
                state.received.append(
                    Received(
                        self.path,
                        self.headers.get("Content-Type", ""),
                        parse_qs(raw.decode()),
                        raw,
                        dict(self.headers.items()),
                    )
                )
                failing = state.fail_next != 0
                if state.fail_next > 0:
                    state.fail_next -= 1
            if state.delay:
                # Wakes early when the test ends, so the server thread stops promptly.
                state.release.wait(state.delay)
            status = 500 if failing else 302 if state.redirect_to else 200
            head = [f"HTTP/1.1 {status} Answer", "Cache-Control: no-store", "Connection: close"]
            if state.redirect_to:
                head.append(f"Location: {state.redirect_to}")
            payload = state.answer(raw) if state.answer and not failing else state.body
            head.append(f"Content-Length: {len(payload)}")
            answer = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
            try:
                if not state.drip:
                    self.wfile.write(answer)
                    return
                for index in range(len(answer)):
                    self.wfile.write(answer[index : index + 1])
                    self.wfile.flush()
                    if state.release.wait(state.drip):
                        return
            except OSError:
                with state.lock:
                    state.abandoned += 1
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


# How often serve_forever checks for shutdown(): its default, 0.5 s, was a wait in every test.
POLL_INTERVAL = 0.01


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the IdP hung up on a slow answer: that is the point of the test


@contextmanager
def running_receiver(**options: object) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (a free port) in a thread for the duration of the block."""
    state = Receiver(**options)  # type: ignore[arg-type]
    server = _QuietServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(POLL_INTERVAL,), name="logout-receiver", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def sign_in_to(http: FlaskClient, client: oidc.Client, **params: str) -> dict[str, Any]:
    """Run the code flow (with ``offline_access``) in a logged-in browser; return the tokens."""
    params.setdefault("scope", "openid profile email offline_access")
    tokens = oidc.issue_tokens(http, client, **params)
    assert "refresh_token" in tokens
    # Time claims follow the test clock, which tests move: PyJWT checks them on the wall clock.
    tokens["claims"] = oidc.decode(
        http, tokens["id_token"], audience=client.client_id, options={"verify_iat": False}
    )
    return tokens


def verify_logout_token(
    http: FlaskClient, token: str, client: oidc.Client, *, now: datetime
) -> dict[str, Any]:
    """Check a logout token (Back-Channel Logout 1.0 §2.4) with PyJWT against /jwks.

    Time claims are checked against the test clock ``now``, not the wall clock.
    """
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    claims = oidc.decode(
        http,
        token,
        audience=client.client_id,
        options={
            "require": ["iss", "aud", "iat", "exp", "jti", "events"],
            "verify_exp": False,
            "verify_iat": False,
        },
    )
    assert claims["iat"] <= now.timestamp() < claims["exp"]
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims
    return claims


def assert_tokens_dead(http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]) -> None:
    """The session's refresh token is refused and its access token inactive (RFC 7662)."""
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.basic_auth,
    )
    assert refreshed.status_code == 400, refreshed.data
    assert refreshed.get_json()["error"] == "invalid_grant"
    introspected = http.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=client.basic_auth
    )
    assert introspected.status_code == 200
    assert introspected.get_json() == {"active": False}


def assert_tokens_alive(http: FlaskClient, client: oidc.Client, tokens: dict[str, Any]) -> None:
    """The session's access token is still active (checked without rotating anything)."""
    introspected = http.post(
        "/introspect", data={"token": tokens["access_token"]}, auth=client.basic_auth
    )
    assert introspected.get_json()["active"] is True
    refresh = http.post(
        "/introspect", data={"token": tokens["refresh_token"]}, auth=client.basic_auth
    )
    assert refresh.get_json()["active"] is True


def deliveries(app: Flask) -> list[LogoutDelivery]:
    """Return every queued back-channel delivery, oldest first."""
    with app.app_context():
        return list(db.get_session().scalars(select(LogoutDelivery).order_by(LogoutDelivery.id)))


def audit_events(app: Flask, event: str) -> list[AuditEvent]:
    """Return the audit rows of one event, oldest first."""
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        return list(db.get_session().scalars(query))


def login_row(app: Flask, sid: str) -> LoginSession:
    """Return the login session with this ``sid``."""
    with app.app_context():
        row = db.get_session().scalar(select(LoginSession).where(LoginSession.sid == sid))
        assert row is not None
        return row


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``condition`` (another thread's doing) until true or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)
    return True
