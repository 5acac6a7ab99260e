"""Cross-site requests in real Chromium, and max_age in real time, against a real ``idp serve``.

The relying party's pages live on http://localhost:PORT and the IdP on http://127.0.0.1:PORT:
different sites, so a top-level POST from the RP to the IdP carries no SameSite=Lax cookie.
The module shares one ``idp serve``: each test signs in as a user of its own.
"""

from __future__ import annotations

import base64
import html
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
from lxml import etree

from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import running_idp
from tests.helpers import saml

# One worker runs the module (--dist loadgroup): it starts one IdP.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("cross_site")]

PASSWORD = "wonderland"


@pytest.fixture(scope="module")
def live_idp(initialised_idp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIdp]:
    """``idp serve`` on a copy of ``idp init``'s files, for the module's tests."""
    with running_idp(initialised_idp, tmp_path_factory.mktemp("cross-site")) as live:
        yield live


@pytest.fixture
def alice(live_idp: LiveIdp) -> str:
    """A user of this test's own (the IdP is the module's): return the address."""
    email = f"alice.{secrets.token_hex(4)}@example.com"
    live_idp.idp("user", "add", email, "--name", "Alice", "--password-stdin", stdin=PASSWORD)
    return email


@dataclass
class RelyingParty:
    """A tiny RP site on localhost: serves auto-submitting forms, records what comes back."""

    url: str = ""
    pages: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)

    def auto_post(self, name: str, action: str, fields: dict[str, str]) -> str:
        """Serve a page that POSTs ``fields`` to ``action`` at once; return its URL."""
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">'
            for key, value in fields.items()
        )
        self.pages[f"/{name}"] = (
            f'<!doctype html><form method="post" action="{html.escape(action)}">{inputs}</form>'
            "<script>document.forms[0].submit()</script>"
        )
        return f"{self.url}/{name}"

    def last(self, path: str) -> dict[str, list[str]]:
        return [form for method, seen, form in self.received if seen == path][-1]


@pytest.fixture
def rp() -> Iterator[RelyingParty]:
    state = RelyingParty()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, form: dict[str, list[str]]) -> None:
            path = urlsplit(self.path).path
            state.received.append((self.command, path, form))
            body = state.pages.get(path, f"<!doctype html><p id=rp>{path}</p>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(parse_qs(urlsplit(self.path).query))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(parse_qs(self.rfile.read(length).decode()))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://localhost:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="rp", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str
    logged_out_uri: str


@pytest.fixture
def client(live_idp: LiveIdp, rp: RelyingParty) -> Client:
    redirect_uri, logged_out_uri = f"{rp.url}/cb", f"{rp.url}/bye"
    created = live_idp.idp(
        "client",
        "add",
        "Notes",
        "--redirect-uri",
        redirect_uri,
        "--post-logout-redirect-uri",
        logged_out_uri,
        "--trusted",
        "--json",
    )
    credentials = json.loads(created.stdout)
    return Client(
        credentials["client_id"], credentials["client_secret"], redirect_uri, logged_out_uri
    )


def authorize_url(live_idp: LiveIdp, client: Client, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid",
        "state": "st",
        "nonce": secrets.token_urlsafe(8),
        **params,
    }
    return f"{live_idp.url}/authorize?{urlencode(query)}"


def sign_in(page: Any, email: str) -> None:
    """Fill in the login form the browser is on."""
    assert urlsplit(page.url).path == "/login", page.url
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def id_token(live_idp: LiveIdp, client: Client, code: str) -> tuple[str, dict[str, Any]]:
    """Exchange the code at /token; return the ID token and its claims (checked by PyJWT)."""
    body = urlencode(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri}
    ).encode()
    request = urllib.request.Request(f"{live_idp.url}/token", data=body, method="POST")  # noqa: S310
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        token = json.load(response)["id_token"]
    keys = jwt.PyJWKClient(f"{live_idp.url}/jwks").get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, keys.key, algorithms=["RS256", "ES256"], audience=client.client_id
    )
    return token, claims


def code_at(page: Any, client: Client) -> str:
    page.wait_for_url(f"{client.redirect_uri}?*")
    query = parse_qs(urlsplit(page.url).query)
    assert "error" not in query, query
    return query["code"][0]


def live_sessions(live_idp: LiveIdp, email: str) -> list[dict[str, Any]]:
    listed = live_idp.idp("session", "list", "--user", email, "--json")
    sessions: list[dict[str, Any]] = json.loads(listed.stdout)
    return sessions


def test_cross_site_post_logout_ends_the_session_or_asks(
    live_idp: LiveIdp,
    rp: RelyingParty,
    client: Client,
    alice: str,
    browser_page: Any,
    screenshots: Path,
) -> None:
    page = browser_page
    page.goto(authorize_url(live_idp, client))
    sign_in(page, alice)
    token, claims = id_token(live_idp, client, code_at(page, client))
    [session] = live_sessions(live_idp, alice)
    assert session["id"] == claims["sid"]
    end_session = f"{live_idp.url}/end_session"

    # No proof (client_id only): the IdP looks again with the cookie and asks; it does not
    # claim "signed out" while the session lives on.
    page.goto(
        rp.auto_post(
            "logout-unproven",
            end_session,
            {"client_id": client.client_id, "post_logout_redirect_uri": client.logged_out_uri},
        )
    )
    page.wait_for_selector("button[name=confirm]")
    page.screenshot(path=str(screenshots / "1-asked.png"))
    assert "signed out" not in page.content()
    assert [item["id"] for item in live_sessions(live_idp, alice)] == [claims["sid"]]

    # A valid id_token_hint: the session it names ends, and the RP gets its 303 back.
    page.goto(
        rp.auto_post(
            "logout",
            end_session,
            {
                "id_token_hint": token,
                "post_logout_redirect_uri": client.logged_out_uri,
                "state": "bye-1",
            },
        )
    )
    page.wait_for_url(f"{client.logged_out_uri}?state=bye-1")
    assert live_sessions(live_idp, alice) == []
    page.goto(f"{live_idp.url}/")
    assert urlsplit(page.url).path == "/login"


def test_prompt_none_by_cross_site_post_signs_in_silently(
    live_idp: LiveIdp, rp: RelyingParty, client: Client, alice: str, browser_page: Any
) -> None:
    page = browser_page
    page.goto(f"{live_idp.url}/login")
    sign_in(page, alice)
    page.wait_for_url(f"{live_idp.url}/")
    fields = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid",
        "state": "silent",
        "nonce": "n-1",
        "prompt": "none",
        "response_mode": "form_post",
    }
    page.goto(rp.auto_post("silent", f"{live_idp.url}/authorize", fields))
    page.wait_for_url(client.redirect_uri)
    answer = rp.last("/cb")
    assert "error" not in answer, answer
    assert answer["state"] == ["silent"]
    _, claims = id_token(live_idp, client, answer["code"][0])
    assert claims["nonce"] == "n-1"


def test_saml_is_passive_by_cross_site_post_signs_in_silently(
    live_idp: LiveIdp, rp: RelyingParty, alice: str, browser_page: Any, tmp_path: Path
) -> None:
    entity_id, acs_url = f"{rp.url}/sp", f"{rp.url}/acs"
    key_pem, cert_pem = saml.sp_key_pair()
    settings = {
        "strict": True,
        "sp": {
            "entityId": entity_id,
            "assertionConsumerService": {"url": acs_url, "binding": saml.ACS_BINDING_POST},
            "NameIDFormat": saml.PERSISTENT,
            "x509cert": cert_pem,
            "privateKey": key_pem,
        },
    }
    metadata = tmp_path / "sp.xml"
    metadata.write_bytes(saml.sp_metadata(settings))
    live_idp.idp("sp", "add", "--metadata", str(metadata))
    page = browser_page
    page.goto(f"{live_idp.url}/login")
    sign_in(page, alice)
    page.wait_for_url(f"{live_idp.url}/")

    request = saml.authn_request(
        issuer=entity_id,
        acs_url=acs_url,
        destination=f"{live_idp.url}/saml/sso",
        request_id="_passive-1",
        IsPassive="true",
    )
    fields = saml.post_fields(etree.tostring(request), relay_state="/home")
    page.goto(rp.auto_post("login", f"{live_idp.url}/saml/sso", fields))
    page.wait_for_url(acs_url)
    answer = rp.last("/acs")
    assert answer["RelayState"] == ["/home"]
    response = etree.fromstring(base64.b64decode(answer["SAMLResponse"][0]))
    status = response.xpath("samlp:Status//samlp:StatusCode/@Value", namespaces=saml.NS)
    assert status == ["urn:oasis:names:tc:SAML:2.0:status:Success"]
    assert response.get("InResponseTo") == "_passive-1"
    assert len(response.xpath("saml:Assertion", namespaces=saml.NS)) == 1


@pytest.mark.parametrize("max_age", ["0", "1"])
def test_max_age_in_real_time_asks_for_one_login(
    live_idp: LiveIdp, client: Client, alice: str, browser_page: Any, max_age: str
) -> None:
    page = browser_page
    page.goto(authorize_url(live_idp, client))
    sign_in(page, alice)
    _, first = id_token(live_idp, client, code_at(page, client))
    time.sleep(2.2)  # the first login is now older than max_age, in real time

    page.goto(authorize_url(live_idp, client, max_age=max_age))
    page.wait_for_url(f"{live_idp.url}/login?*")
    time.sleep(1.2)  # the user types the password: longer than max_age
    asked_at = int(time.time())
    sign_in(page, alice)
    _, claims = id_token(live_idp, client, code_at(page, client))
    assert claims["sid"] == first["sid"]
    assert claims["auth_time"] >= asked_at >= first["auth_time"] + 3
    assert claims["auth_time"] <= int(time.time())
