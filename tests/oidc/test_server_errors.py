"""One handler for unexpected failures: JSON at the endpoints programs call, a page elsewhere."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import oidc


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("secret internal detail")


def test_an_unexpected_failure_at_userinfo_is_json(
    http: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from idp.oidc import tokens

    monkeypatch.setattr(tokens, "verify_access_token", _explode)
    with caplog.at_level(logging.ERROR):
        response = http.get("/userinfo", headers={"Authorization": "Bearer some.access.token"})
    assert response.status_code == 500
    assert response.get_json() == {"error": "server_error"}
    assert response.headers["Cache-Control"] == "no-store"
    assert b"secret internal detail" not in response.data
    assert any(record.exc_info for record in caplog.records)  # the operator gets the stack


def test_an_unexpected_failure_at_authorize_is_the_error_page(
    http: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from idp.sessions import service as sessions

    monkeypatch.setattr(sessions, "current_login", _explode)
    with caplog.at_level(logging.ERROR):
        response = http.get("/authorize", query_string={"client_id": "nope"})
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side." in body
    assert "secret internal detail" not in body and "RuntimeError" not in body
    assert any(record.exc_info for record in caplog.records)


def test_an_error_sent_to_the_client_names_the_issuer_once(http: FlaskClient, app: Flask) -> None:
    # RFC 9207 §2: iss in every authorization response, error responses included; once.
    client = oidc.register(app)
    response = oidc.authorize(http, client, prompt="none")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    assert location.count("iss=") == 1
    assert oidc.query_of(location)["error"] == "login_required"
