"""A locked account unlocks by itself once real time passes, on a real ``idp serve``."""

from __future__ import annotations

import http.cookiejar
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import initialised_idp  # noqa: F401 (fixtures, found by name)
from tests.e2e.conftest import live_idp  # noqa: F401
from tests.helpers.forms import csrf_token

EMAIL = "alice@example.com"
PASSWORD = "wonderland and back"


@pytest.fixture
def short_lockout_idp(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> LiveIdp:
    monkeypatch.setenv("IDP_LOGIN_LOCKOUT", "2")
    live: LiveIdp = request.getfixturevalue("live_idp")
    live.idp("user", "add", EMAIL, "--name", "Alice", "--password-stdin", stdin=PASSWORD + "\n")
    return live


def log_in(base: str, password: str) -> int:
    """Post the login form in a fresh cookie jar; return the status (a redirect is not followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect
    )
    with browser.open(base + "/login", timeout=5) as page:
        token = csrf_token(page.read())
    form = {"csrf_token": token, "username": EMAIL, "password": password}
    try:
        with browser.open(base + "/login", urllib.parse.urlencode(form).encode(), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as answer:
        return answer.code


def test_the_lock_ends_in_real_time(short_lockout_idp: LiveIdp) -> None:
    base = short_lockout_idp.url
    for _ in range(5):
        assert log_in(base, "wrong password") == 401
    assert log_in(base, PASSWORD) == 401  # locked: the right password fails too
    time.sleep(2.5)
    assert log_in(base, PASSWORD) == 302
