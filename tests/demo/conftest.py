"""The demo apps as a company would run them: a real ``idp serve`` and each app on loopback HTTP."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jwt
import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from relying_party_demo.common.layout import get_store
from relying_party_demo.common.store import SessionStore
from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import free_port
from tests.e2e.conftest import idp_environment
from tests.e2e.conftest import initialised_idp  # noqa: F401 (a fixture, found by name)
from tests.e2e.conftest import running_idp
from tests.helpers.receiver import POLL_INTERVAL

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALICE = ("alice@example.com", "Alice Liddell", "alice-test-password")
HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
FORM_ACTION = re.compile(r'<form[^>]*\saction="([^"]*)"')


class Dispatcher:
    """A WSGI app whose Flask app is set once its port (and so its base URL) is known."""

    app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self.app(environ, start_response)


@contextmanager
def serving() -> Iterator[tuple[str, Dispatcher]]:
    """Serve a :class:`Dispatcher` on a free loopback port in a thread."""
    dispatcher = Dispatcher()
    server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", dispatcher
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep each module on one xdist worker (``--dist loadgroup``): it starts one IdP and apps."""
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@dataclass
class DemoApp:
    url: str
    app: Flask
    client_id: str = ""

    @property
    def store(self) -> SessionStore:
        return get_store(self.app)


@pytest.fixture(scope="session")
def idp_with_alice(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Path:
    """``idp init`` and ``idp user add`` Alice, once per run (per xdist worker)."""
    folder = tmp_path_factory.mktemp("idp-alice")
    shutil.copytree(request.getfixturevalue("initialised_idp"), folder, dirs_exist_ok=True)
    email, name, password = ALICE
    LiveIdp("", idp_environment(folder, free_port())).idp(
        "user", "add", email, "--name", name, "--password-stdin", stdin=password + "\n"
    )
    return folder


@pytest.fixture(scope="module")
def idp_server(idp_with_alice: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIdp]:
    """A real ``idp serve`` (on a copy of ``idp_with_alice``) for the module's apps."""
    with running_idp(idp_with_alice, tmp_path_factory.mktemp("idp")) as live:
        yield live


def register_client(idp: LiveIdp, name: str, url: str, *extra: str) -> dict[str, str]:
    """``idp client add`` the demo app served at ``url``, as ``idp init --demo`` would."""
    result = idp.idp(
        "client",
        "add",
        name.title(),
        "--client-id",
        name,
        "--redirect-uri",
        f"{url}/callback",
        "--post-logout-redirect-uri",
        f"{url}/",
        "--backchannel-logout-uri",
        f"{url}/backchannel-logout",
        "--trusted",
        "--json",
        *extra,
    )
    credentials: dict[str, str] = json.loads(result.stdout)
    return credentials


def oidc_app_settings(idp: LiveIdp, name: str, url: str) -> dict[str, Any]:
    return {"IDP_ISSUER": idp.url, f"{name.upper()}_BASE_URL": url}


@pytest.fixture(scope="module")
def notes(idp_server: LiveIdp) -> Iterator[DemoApp]:
    from relying_party_demo.notes import create_app

    with serving() as (url, dispatcher):
        credentials = register_client(idp_server, "notes", url)
        app = create_app(
            {
                **oidc_app_settings(idp_server, "notes", url),
                "NOTES_CLIENT_ID": credentials["client_id"],
                "NOTES_CLIENT_SECRET": credentials["client_secret"],
            }
        )
        dispatcher.app = app
        yield DemoApp(url, app, credentials["client_id"])


@pytest.fixture(scope="module")
def wiki(idp_server: LiveIdp) -> Iterator[DemoApp]:
    from relying_party_demo.wiki import create_app

    with serving() as (url, dispatcher):
        credentials = register_client(idp_server, "wiki", url, "--public")
        assert "client_secret" not in credentials
        app = create_app(
            {
                **oidc_app_settings(idp_server, "wiki", url),
                "WIKI_CLIENT_ID": credentials["client_id"],
            }
        )
        dispatcher.app = app
        yield DemoApp(url, app, credentials["client_id"])


@pytest.fixture
def browser() -> Iterator[requests.Session]:
    """A fresh cookie jar: one browser."""
    with requests.Session() as session:
        yield session


def hidden_fields(page: str) -> dict[str, str]:
    return {name: unescape(value) for name, value in HIDDEN_INPUT.findall(page)}


def submit_login_form(
    browser: requests.Session, page: requests.Response, email: str, password: str
) -> requests.Response:
    """Fill in the IdP's login form shown in ``page`` and follow where it leads."""
    match = FORM_ACTION.search(page.text)
    assert match, f"no form on {page.url}"
    action = urljoin(page.url, unescape(match.group(1)))
    fields = {**hidden_fields(page.text), "username": email, "password": password}
    return browser.post(action, data=fields, timeout=30)


def sign_in(
    browser: requests.Session, app: DemoApp, email: str = ALICE[0], password: str = ALICE[2]
) -> requests.Response:
    """Press the app's "Log in" button and sign in at the IdP; return the page it lands on."""
    form = browser.get(f"{app.url}/login", timeout=30)
    assert 'name="password"' in form.text, f"expected the IdP's login form at {form.url}"
    return submit_login_form(browser, form, email, password)


def session_key(browser: requests.Session, cookie: str) -> str | None:
    value: str | None = browser.cookies.get(cookie)
    return value


def decode_id_token(idp: LiveIdp, token: str, audience: str) -> dict[str, Any]:
    """Check an ID token with PyJWT against the IdP's /jwks (the app checked it with Authlib)."""
    key = jwt.PyJWKClient(f"{idp.url}/jwks").get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256", "ES256"], audience=audience, issuer=idp.url
    )
    return claims


def discovery(idp: LiveIdp) -> dict[str, Any]:
    metadata: dict[str, Any] = requests.get(
        f"{idp.url}/.well-known/openid-configuration", timeout=10
    ).json()
    return metadata


def stored_user(app: DemoApp, browser: requests.Session) -> dict[str, Any] | None:
    """Return the signed-in user the app keeps for this browser, or None."""
    key = browser.cookies.get(f"{app.app.name.rsplit('.', 1)[-1]}_session")
    data = app.store.load(key) if key else None
    user = (data or {}).get("user")
    return user if isinstance(user, dict) else None


@pytest.fixture(scope="module")
def payroll(idp_server: LiveIdp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoApp]:
    """Payroll registered at the IdP from the SP metadata it serves, as ``make demo`` does."""
    from relying_party_demo.payroll import create_app

    with serving() as (url, dispatcher):
        app = create_app(
            {
                "IDP_ISSUER": idp_server.url,
                "PAYROLL_BASE_URL": url,
                "PAYROLL_SP_DIR": str(tmp_path_factory.mktemp("payroll-sp")),
            }
        )
        dispatcher.app = app
        metadata = tmp_path_factory.mktemp("payroll-metadata") / "payroll.xml"
        metadata.write_bytes(requests.get(f"{url}/saml/metadata", timeout=30).content)
        registered = json.loads(
            idp_server.idp("sp", "add", "--metadata", str(metadata), "--json").stdout
        )
        yield DemoApp(url, app, registered["entity_id"])


def post_form(browser: requests.Session, page: requests.Response) -> requests.Response:
    """Submit the auto-posting form of ``page`` (SAML HTTP-POST binding), as a browser would."""
    # A browser runs the auto-post script only on an HTML page; text/plain shows the source.
    assert page.headers["Content-Type"].startswith("text/html"), page.headers["Content-Type"]
    match = FORM_ACTION.search(page.text)
    assert match, f"no form on {page.url}"
    action = urljoin(page.url, unescape(match.group(1)))
    return browser.post(action, data=hidden_fields(page.text), timeout=30)
