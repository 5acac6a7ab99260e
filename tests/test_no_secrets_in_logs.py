"""A whole OIDC and SAML journey with every logger at DEBUG: no secret it made reaches a log."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.logs import configure_logging
from idp.settings import LOG_FORMATS
from idp.settings import get_settings
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml
from tests.helpers.forms import csrf_token

LOGGERS = ["", "authlib", "idp", "werkzeug", "sqlalchemy", "sqlalchemy.engine", "flask_login"]


@pytest.fixture
def log_format() -> str:
    return "json"  # idp serve's default


@pytest.fixture
def debug_logs(
    app: Flask, caplog: pytest.LogCaptureFixture, log_format: str
) -> pytest.LogCaptureFixture:
    """Set ``idp serve``'s logging at DEBUG, then force DEBUG on every logger.

    As a curious operator would: the test relies on no level. caplog sees each record as any
    handler would; capsys sees what ``idp serve`` writes to stderr.
    """
    with app.app_context():
        settings = get_settings(app)
    configure_logging(dataclasses.replace(settings, log_level="DEBUG", log_format=log_format))
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if type(h).__name__ == "StderrHandler"]:
        root.removeHandler(handler)


def journey(app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser) -> list[str]:
    """Run a whole journey; return every secret that passed.

    Log in, the code flow with PKCE, refresh, userinfo, introspect, revoke, SAML SSO, log out.
    """
    made: list[str] = [user.password]
    assert auth.login(user.email, user.password).status_code == 302
    made.append(http.get_cookie("idp_session").value)

    client = oidc.register(app)
    assert client.client_secret is not None
    made.append(client.client_secret)
    verifier, challenge = oidc.pkce_pair()
    code = oidc.get_code(
        http,
        client,
        scope="openid profile email offline_access",
        nonce=secrets.token_urlsafe(8),
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    made += [code, verifier]
    response = oidc.exchange(http, client, code, code_verifier=verifier)
    assert response.status_code == 200, response.data
    first = response.get_json()
    made += [first["access_token"], first["refresh_token"], first["id_token"]]

    response = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=client.basic_auth,
    )
    assert response.status_code == 200, response.data
    second = response.get_json()
    made += [second["access_token"], second["refresh_token"], second["id_token"]]

    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 200
    response = http.post(
        "/introspect", data={"token": second["access_token"]}, auth=client.basic_auth
    )
    assert response.get_json()["active"] is True
    response = http.post("/revoke", data={"token": second["refresh_token"]}, auth=client.basic_auth)
    assert response.status_code == 200

    settings = saml.sp_settings(http)
    saml.register(app, settings)
    response, request_id = saml.sso(http, settings)
    form = saml.read_form(response)
    assert saml.process_response(settings, form, request_id).is_authenticated()
    made.append(form.fields["SAMLResponse"])
    made += [value.text for value in form.xml().iter("{*}SignatureValue") if value.text]

    response = http.get("/end_session", query_string={"id_token_hint": second["id_token"]})
    assert response.status_code in (200, 303)
    page = http.get("/logout")
    if page.status_code == 200 and b"csrf_token" in page.data:
        http.post("/logout", data={"csrf_token": csrf_token(page.data)})
    return made


def fragments(secret: str) -> list[str]:
    """The secret and, for a JWT, each of its parts (a leaked payload or signature counts)."""
    parts = [secret, *(part for part in secret.split(".") if len(part) >= 16)]
    return [part.strip() for part in parts if len(part.strip()) >= 6]


def test_json_lines_stay_json_and_redacted_whatever_a_message_holds(
    app: Flask, debug_logs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = 'x"}\n{"level": "forged", "code": "c0de-value\\", "password=\'pw-value\''
    logging.getLogger("some.library").warning("%s", hostile, extra={"http": {"path": "/a"}})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1  # a newline in a message cannot forge a second line
    entry = json.loads(lines[0])
    assert entry["level"] == "WARNING" and entry["path"] == "/a"
    assert "c0de-value" not in lines[0] and "pw-value" not in lines[0]


def test_no_secret_at_debug(
    app: Flask,
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = journey(app, http, auth, user)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [formatter.format(record) for record in debug_logs.records]
    stderr = capsys.readouterr().err
    # The journey was logged, in detail, one JSON object per line: the audit trail and the
    # access lines on stderr, Authlib's own debug lines.
    lines = [json.loads(line) for line in stderr.splitlines()]
    events = {line.get("event") for line in lines if line["logger"] == "idp.audit"}
    assert {"login_success", "token_issued", "assertion_issued", "logout"} <= events
    assert {line["endpoint"] for line in lines if line["logger"] == "idp.access"} >= {
        "oidc.token",
        "oidc.userinfo",
        "saml.sso",
    }
    assert any("Issue token" in line for line in records), "Authlib's DEBUG line is the test"
    for secret in made:
        for fragment in fragments(secret):
            assert fragment not in stderr, f"{fragment[:12]}… on stderr"
            leaked = [line for line in records if fragment in line]
            assert not leaked, leaked[:1]


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (
            "GET /end_session?id_token_hint=eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl&state=1",
            "c2lnbmF0dXJl",
        ),
        ("Issue token {'access_token': 'opaque-a', 'refresh_token': 'opaque-r'}", "opaque-r"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("Authorization: Basic YWJjOmRlZg==", "YWJjOmRlZg"),
        ("callback?code=the-code-value&state=x", "the-code-value"),
        ("SAMLResponse=PHNhbWxwOlJlc3BvbnNl&RelayState=x", "PHNhbWxwOlJlc3BvbnNl"),
        ('password="quoted secret" next', "quoted secret"),  # escaped quotes in JSON
    ],
)
def test_the_stderr_handler_blanks_secrets_any_library_logs(
    app: Flask, debug_logs: Any, capsys: pytest.CaptureFixture[str], line: str, secret: str
) -> None:
    with app.app_context():
        settings = get_settings(app)
    for log_format in LOG_FORMATS:
        configure_logging(dataclasses.replace(settings, log_level="DEBUG", log_format=log_format))
        logging.getLogger("some.library").warning("%s", line)
        stderr = capsys.readouterr().err
        assert "some.library" in stderr and "[redacted]" in stderr, log_format
        for part in secret.split():
            assert part not in stderr, log_format


def test_no_totp_secret_or_recovery_code_at_debug(
    app: Flask,
    http: FlaskClient,
    logged_in: TestUser,
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.conftest import Clock
    from tests.helpers import mfa

    clock: Clock = app.extensions["idp.clock"]
    secret, codes = mfa.enrol_through_the_page(http, clock.now)
    browser = app.test_client()
    AuthActions(browser).login(logged_in.email, logged_in.password)
    assert mfa.submit_otp(browser, codes[0]).status_code == 303
    renewed = mfa.post_security(http, action="recovery_codes", current_password=logged_in.password)
    codes += mfa.CODES.findall(renewed.get_data(as_text=True))

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in debug_logs.records)
    logged += capsys.readouterr().err
    assert "mfa_enabled" in logged and "recovery_code_used" in logged  # the journey was logged
    for value in [secret, *codes, *(code.replace("-", "") for code in codes)]:
        assert value not in logged
