"""Request IDs (``X-Request-ID``, kept when plain, else made) and one JSON access line each."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers.forms import csrf_token
from tests.test_no_secrets_in_logs import debug_logs  # noqa: F401 (fixture)
from tests.test_no_secrets_in_logs import log_format  # noqa: F401 (fixture)

GENERATED = re.compile(r"[0-9a-f]{32}")


PLAIN = ["3f0c2a9e-6d1b-4c7e-9a51-2b8e0f6d4c11", "nginx.5e1f:0/A+b=", "x" * 128]
# Empty, too long, spaces, quotes, controls, markup, non-ASCII: a line forged or a payload.
OTHERS = ["", "x" * 129, "two words", 'a"b', "a\tb", "<script>", "é"]


def test_a_plain_request_id_is_kept_and_echoed_any_other_replaced(http: FlaskClient) -> None:
    for given in PLAIN:
        response = http.get("/healthz", headers={"X-Request-ID": given})
        assert response.headers["X-Request-ID"] == given
    for given in OTHERS:
        response = http.get("/healthz", headers={"X-Request-ID": given})
        assert GENERATED.fullmatch(response.headers["X-Request-ID"]), given


def test_each_request_gets_its_own_id_even_on_errors(http: FlaskClient) -> None:
    ids = [http.get(path).headers["X-Request-ID"] for path in ("/healthz", "/healthz", "/nope")]
    assert all(GENERATED.fullmatch(request_id) for request_id in ids)
    assert len(set(ids)) == 3
    assert http.post("/token").headers["X-Request-ID"]  # an OAuth error answer too


def test_one_json_access_line_per_request_with_the_security_events_it_caused(
    http: FlaskClient,
    auth: AuthActions,
    user: TestUser,
    debug_logs: Any,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = http.get("/login")
    form = {"csrf_token": csrf_token(page.data), "username": user.email, "password": "wrong"}
    response = http.post(
        "/login?next=/account/sessions&code=not-logged",
        data=form,
        headers={"X-Request-ID": "req-login-1"},
        environ_base={"REMOTE_ADDR": "192.0.2.44"},
    )
    assert response.status_code == 401
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    mine = [line for line in lines if line.get("request_id") == "req-login-1"]
    [access] = [line for line in mine if line["logger"] == "idp.access"]
    assert {key: access[key] for key in ("method", "path", "endpoint", "status", "ip")} == {
        "method": "POST",
        "path": "/login",  # never the query string
        "endpoint": "sessions.login",
        "status": 401,
        "ip": "192.0.2.44",
    }
    assert isinstance(access["duration_ms"], float) and access["level"] == "INFO"
    [event] = [line for line in mine if line["logger"] == "idp.audit"]
    assert (event["event"], event["user_id"], event["ip"]) == (
        "login_failure",
        user.id,
        "192.0.2.44",
    )
    assert event["details"] == {"reason": "bad_credentials"}
    assert "not-logged" not in json.dumps(lines)
    assert len([line for line in lines if line["logger"] == "idp.access"]) == 2  # GET and POST
