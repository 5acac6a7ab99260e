"""private_key_jwt with keys published at the client's jwks_uri, and JSON 500s at /token."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Clock
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers.receiver import POLL_INTERVAL
from tests.helpers.receiver import wait_for
from tests.oidc.test_client_auth import CC
from tests.oidc.test_client_auth import KeyPair
from tests.oidc.test_client_auth import assert_invalid_client
from tests.oidc.test_client_auth import with_assertion
from tests.oidc.test_token import state_of


class JwksServer:
    """A loopback server publishing a JWK Set, counting how often it is fetched."""

    def __init__(self) -> None:
        self.body: dict[str, Any] = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                owner.hits += 1
                payload = json.dumps(owner.body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks"
        serve = threading.Thread(target=self.server.serve_forever, args=(POLL_INTERVAL,))
        serve.daemon = True
        serve.start()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_keys_are_fetched_from_the_jwks_uri_and_cached(
    app: Flask, http: FlaskClient, jwks_server: JwksServer
) -> None:
    keys = KeyPair("RSA")
    jwks_server.body = keys.jwks
    client = oidc.register(
        app, "Machine", token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_server.url
    )
    for _ in range(2):
        response = http.post("/token", data=with_assertion(keys.assertion(client.client_id), **CC))
        assert response.status_code == 200, response.data
    assert jwks_server.hits == 1


def test_a_jwks_uri_publishing_private_keys_is_not_trusted(
    app: Flask, http: FlaskClient, jwks_server: JwksServer
) -> None:
    keys = KeyPair("RSA")
    jwks_server.body = {"keys": [{**keys.jwks["keys"][0], "d": "private"}]}
    client = oidc.register(
        app, "Machine", token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_server.url
    )
    before = state_of(app)
    response = http.post("/token", data=with_assertion(keys.assertion(client.client_id), **CC))
    assert_invalid_client(response, basic=False)
    assert state_of(app) == before


def test_an_unreachable_jwks_uri_is_invalid_client(app: Flask, http: FlaskClient) -> None:
    keys = KeyPair("RSA")
    client = oidc.register(
        app,
        "Machine",
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="http://127.0.0.1:1/jwks",
    )
    response = http.post("/token", data=with_assertion(keys.assertion(client.client_id), **CC))
    assert_invalid_client(response, basic=False)


def test_an_unexpected_failure_at_the_token_endpoint_is_json(
    app: Flask, http: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idp.keys.store import KeyStore

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    client = oidc.register(app, "Machine", token_endpoint_auth_method="client_secret_basic")
    monkeypatch.setattr(KeyStore, "signing_key", broken)
    response = http.post("/token", data=CC, auth=client.basic_auth)
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error"}
    assert b"secret internal detail" not in response.data


# -- outbound fetch limits (a registered URI is the client's choice) --------------------------


def machine(app: Flask, jwks_uri: str, **options: Any) -> oidc.Client:
    return oidc.register(
        app, "Machine", token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_uri, **options
    )


def token_request(http: FlaskClient, keys: KeyPair, client: oidc.Client) -> Any:
    return http.post("/token", data=with_assertion(keys.assertion(client.client_id), **CC))


def test_a_jwks_uri_answering_byte_by_byte_is_abandoned_at_the_deadline(
    app: Flask, http: FlaskClient
) -> None:
    # Each byte comes well within a read timeout; the whole answer would take a minute.
    keys = KeyPair("RSA")
    with rx.running_receiver(body=json.dumps(keys.jwks).encode(), drip=0.05) as slow:
        client = machine(app, slow.endpoint("/jwks"))
        before = state_of(app)

        response = token_request(http, keys, client)

        assert_invalid_client(response, basic=False)
        assert state_of(app) == before
        assert wait_for(lambda: slow.abandoned == 1)


def test_a_redirect_from_the_jwks_uri_is_not_followed(app: Flask, http: FlaskClient) -> None:
    keys = KeyPair("RSA")
    with (
        rx.running_receiver(body=json.dumps(keys.jwks).encode()) as target,
        rx.running_receiver(redirect_to=target.endpoint("/jwks")) as redirector,
    ):
        client = machine(app, redirector.endpoint("/jwks"))

        response = token_request(http, keys, client)

        assert_invalid_client(response, basic=False)
        assert len(redirector.received) == 1
        assert target.received == []


def test_an_oversized_jwk_set_is_refused(app: Flask, http: FlaskClient) -> None:
    keys = KeyPair("RSA")
    padded = {**keys.jwks, "padding": "x" * 70_000}
    with rx.running_receiver(body=json.dumps(padded).encode()) as huge:
        client = machine(app, huge.endpoint("/jwks"))
        assert_invalid_client(token_request(http, keys, client), basic=False)


def test_a_failed_fetch_is_not_repeated_for_every_request(
    app: Flask, http: FlaskClient, clock: Clock
) -> None:
    # Anonymous /token requests must not make the IdP call the client's URI at will.
    keys = KeyPair("RSA")
    with rx.running_receiver(body=json.dumps(keys.jwks).encode(), fail_next=1) as server:
        client = machine(app, server.endpoint("/jwks"))
        for _ in range(3):
            assert_invalid_client(token_request(http, keys, client), basic=False)
        assert len(server.received) == 1
        clock.advance(seconds=31)

        assert token_request(http, keys, client).status_code == 200
        assert len(server.received) == 2


def test_the_jwk_set_is_cached_per_client_for_a_while(
    app: Flask, http: FlaskClient, clock: Clock
) -> None:
    keys = KeyPair("RSA")
    with rx.running_receiver(body=json.dumps(keys.jwks).encode()) as server:
        first = machine(app, server.endpoint("/jwks"))
        second = oidc.register(
            app,
            "Other",
            token_endpoint_auth_method="private_key_jwt",
            jwks_uri=server.url + "/jwks",
        )
        for client in (first, second, first, second):
            assert token_request(http, keys, client).status_code == 200
        assert len(server.received) == 2  # once per client
        clock.advance(minutes=5, seconds=1)

        assert token_request(http, keys, first).status_code == 200
        assert len(server.received) == 3


def test_a_self_registered_jwks_uri_on_loopback_is_never_fetched(
    app: Flask, http: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Checked again at fetch time: the name may resolve elsewhere now (DNS rebinding), or the
    # row predates the registration check.
    from idp import db
    from idp.models.oidc import OAuthClient

    keys = KeyPair("RSA")
    with rx.running_receiver(body=json.dumps(keys.jwks).encode()) as internal:
        client = machine(app, "https://keys.example.com/jwks", self_registered=True)
        with app.app_context():
            row = db.get_session().scalars(select(OAuthClient)).one()
            row.jwks_uri = internal.endpoint("/jwks").replace(
                "http://127.0.0.1", "https://localhost"
            )
            db.get_session().commit()

        assert_invalid_client(token_request(http, keys, client), basic=False)
        assert internal.received == []
        assert "not a public address" in caplog.text
