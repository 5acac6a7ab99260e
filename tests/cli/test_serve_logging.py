"""``idp serve`` in production: JSON logs, metrics summed over workers, a graceful SIGTERM.

The logs on stderr carry the audit trail and one access line per request, never a query
string or a secret.
"""

from __future__ import annotations

import http.cookiejar
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.cli.test_console_script import IDP
from tests.cli.test_console_script import env  # noqa: F401 (fixture)
from tests.cli.test_console_script import free_port
from tests.cli.test_console_script import http_get
from tests.cli.test_console_script import initialised  # noqa: F401 (fixture)
from tests.cli.test_console_script import initialised_template  # noqa: F401 (fixture)
from tests.helpers.forms import csrf_token


def wait_until_up(server: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            if http_get(base + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


WRONG_PASSWORD = "wrong-pw-" + "9f1c"  # noqa: S105
CLIENT_SECRET = "slow-request-secret-5be1"  # noqa: S105
HINT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWEtaGludA"


def failed_login(base: str) -> None:
    """Log in with a wrong password from a new browser (a new connection, any worker)."""
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with browser.open(base + "/login", timeout=5) as page:
        token = csrf_token(page.read())
    form = {"csrf_token": token, "username": "alice@example.com", "password": WRONG_PASSWORD}
    try:
        browser.open(base + "/login", urllib.parse.urlencode(form).encode(), timeout=5)
    except urllib.error.HTTPError as refused:
        assert refused.code == 401
    else:
        raise AssertionError("a wrong password was accepted")


def scrape(base: str) -> dict[str, float]:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def slow_token_request(port: int, server: subprocess.Popen[bytes]) -> bytes:
    """POST /token in two halves with SIGTERM sent between them; return the whole answer."""
    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": CLIENT_SECRET}
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.5)  # a worker is in the request, waiting for the rest of the body
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the workers have been told to stop
        assert server.poll() is None, "the server quit with a request in flight"
        sock.sendall(body[10:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_serve_in_production(initialised: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(IDP), "serve", "--port", str(port), "--workers", "2"],
            env={**initialised, "TMPDIR": str(temporary)},
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(server, base, log_path)
            assert [path.name[:12] for path in temporary.iterdir()] == ["idp-metrics-"]
            for _ in range(3):
                failed_login(base)
            # Whichever worker answers the scrape, it reports every worker's counts.
            for _ in range(2):
                samples = scrape(base)
                assert samples['idp_logins_total{"result": "failure"}'] == 3
                assert samples["idp_active_sessions{}"] == 0
                assert (
                    samples['idp_http_request_duration_seconds_count{"endpoint": "sessions.login"}']
                    == 6
                )

            # A query string full of secrets stays out of the log (the access line has the path).
            assert http_get(f"{base}/end_session?id_token_hint={HINT}")[0] == 400
            request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
                base + "/healthz", headers={"X-Request-ID": "probe-42"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                assert response.headers["X-Request-ID"] == "probe-42"

            answer = slow_token_request(port, server)
            status = int(answer.split(b" ", 2)[1])  # the answer came whole, after SIGTERM
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "invalid_client"
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert list(temporary.iterdir()) == []  # the metrics directory went with the server

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert {line["logger"] for line in lines} >= {"gunicorn.error", "idp.access", "idp.audit"}
    access = [line for line in lines if line["logger"] == "idp.access"]
    probe = [line for line in access if line.get("request_id") == "probe-42"]
    assert [(line["endpoint"], line["status"], line["ip"]) for line in probe] == [
        ("ops.healthz", 200, "127.0.0.1")
    ]
    assert [line["status"] for line in access if line["endpoint"] == "oidc.token"] == [status]
    ended = [line for line in access if line["endpoint"] == "oidc.end_session"]
    assert [(line["method"], line["path"], line["status"]) for line in ended] == [
        ("GET", "/end_session", 400)
    ]
    failures = [line for line in lines if line.get("event") == "login_failure"]
    assert len(failures) == 3 and all(line["request_id"] for line in failures)
    assert any("Handling signal: term" in line["message"] for line in lines)
    text = log_path.read_text()
    assert WRONG_PASSWORD not in text and CLIENT_SECRET not in text
    assert "id_token_hint" not in text and "c2lnbmF0dXJl" not in text
