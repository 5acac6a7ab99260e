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

from tests.helpers import oidc
from tests.helpers.receiver import POLL_INTERVAL
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
