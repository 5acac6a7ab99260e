"""``idp serve`` logs to stderr: the audit trail at the default level, no query strings."""

from __future__ import annotations

import http.cookiejar
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

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


def test_serve_logs_audit_lines_and_no_query_string(
    initialised: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    hint = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWEtaGludA"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(IDP), "serve", "--port", str(port), "--workers", "1"],
            env=initialised,  # no IDP_LOG_LEVEL: the default
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(server, base, log_path)
            browser = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
            )
            with browser.open(base + "/login", timeout=5) as page:
                token = csrf_token(page.read())
            form = {"csrf_token": token, "username": "nobody@example.com", "password": "wrong-pw"}
            try:
                browser.open(base + "/login", urllib.parse.urlencode(form).encode(), timeout=5)
            except urllib.error.HTTPError as refused:
                assert refused.code == 401
            http_get(f"{base}/end_session?id_token_hint={hint}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    output = log_path.read_text()
    assert "INFO idp.audit: login_failure" in output, output
    assert '"GET /end_session HTTP/1.1" 400' in output, output
    assert "id_token_hint" not in output and "c2lnbmF0dXJl" not in output
    assert "wrong-pw" not in output
