"""A certified relying-party library (idpyoidc) signs in through a real ``idp serve``.

The RP is configured from discovery only; it builds the request (PKCE, state, nonce),
exchanges the code and verifies the ID token itself (signature from ``jwks_uri``, ``iss``,
``aud``, ``nonce``) before fetching userinfo. The browser part is plain HTTP.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urljoin
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import require_service
from tests.e2e.conftest import LiveIdp
from tests.e2e.conftest import running_idp

# One worker runs the module: it shares one live IdP.
pytestmark = pytest.mark.xdist_group("interop")

EMAIL = "alice@example.com"
PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:8765/callback"  # never contacted: the test reads the redirect
README = Path(__file__).resolve().parents[2] / "README.md"


class FormReader(HTMLParser):
    """Collect the first form's action and its named inputs, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action, self._in_form = values.get("action", ""), True
        elif tag == "input" and self._in_form and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def new_browser() -> requests.Session:
    browser = requests.Session()
    browser.trust_env = False  # loopback only: no proxy from the environment
    return browser


def sign_in(
    browser: requests.Session, url: str, *, redirect_uri: str = REDIRECT_URI, login: bool = True
) -> dict[str, str]:
    """Follow the IdP's redirects, fill the login form once, stop at the RP's redirect_uri."""
    for _ in range(10):
        if url.startswith(redirect_uri + "?"):
            return query_of(url)
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url = urljoin(url, response.headers["Location"])
            continue
        assert response.status_code == 200, response.text[:500]
        assert login, f"asked to sign in again at {response.url}"
        form = FormReader()
        form.feed(response.text)
        assert {"username", "password", "csrf_token"} <= set(form.fields), form.fields
        form.fields.update(username=EMAIL, password=PASSWORD)
        response = browser.post(
            urljoin(response.url, form.action or response.url),
            data=form.fields,
            allow_redirects=False,
            timeout=10,
        )
        assert response.is_redirect, response.text[:500]
        url = urljoin(response.url, response.headers["Location"])
        login = False
    raise AssertionError(f"no redirect to {redirect_uri} after 10 steps, last at {url}")


@pytest.fixture(scope="module")
def live_idp(initialised_idp: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIdp]:
    """One ``idp serve`` with alice for the module (each start costs seconds).

    Every test registers its own client, and each sign-in starts from a browser with no cookies.
    """
    with running_idp(initialised_idp, tmp_path_factory.mktemp("interop")) as live:
        live.idp(
            "user", "add", EMAIL, "--name", "Alice Liddell", "--password-stdin", stdin=PASSWORD
        )
        yield live


def seed(live: LiveIdp, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """Register a trusted confidential client with the CLI; return its credentials."""
    created = live.idp(
        "client", "add", "Interop RP", "--redirect-uri", redirect_uri, "--trusted", "--json"
    )
    credentials: dict[str, str] = json.loads(created.stdout)
    return credentials


Httpc = Callable[..., requests.Response]


def build_rp(live: LiveIdp, credentials: dict[str, str], httpc: Httpc | None = None) -> Any:
    """Return an idpyoidc RPHandler that knows only the issuer and its own registration."""
    require_service(
        importlib.util.find_spec("idpyoidc") is not None,
        "idpyoidc is not installed (pip install -e '.[dev]')",
    )
    from cryptojwt.key_jar import KeyJar
    from idpyoidc.client.rp_handler import RPHandler

    session = new_browser()
    config = {
        live.url: {
            "issuer": live.url,  # everything else comes from /.well-known/openid-configuration
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "redirect_uris": [REDIRECT_URI],
            "client_type": "oidc",
            "preference": {
                "response_types": ["code"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scopes_supported": ["openid", "profile", "email"],
            },
            "add_ons": {
                "pkce": {
                    "function": "idpyoidc.client.oauth2.add_on.pkce.add_support",
                    "kwargs": {"code_challenge_length": 64, "code_challenge_method": "S256"},
                }
            },
        }
    }
    return RPHandler(
        base_url="http://127.0.0.1:8765",
        client_configs=config,
        keyjar=KeyJar(),  # the RP signs nothing; keeps the library from writing key files
        httpc=httpc or session.request,
        httpc_params={"timeout": 10},
    )


def test_idpyoidc_signs_in_with_discovery_pkce_and_its_own_id_token_checks(
    live_idp: LiveIdp,
) -> None:
    credentials = seed(live_idp)
    rp = build_rp(live_idp, credentials)
    authorization_url: str = rp.begin(issuer_id=live_idp.url)

    discovery = (
        new_browser().get(f"{live_idp.url}/.well-known/openid-configuration", timeout=10).json()
    )
    assert authorization_url.startswith(discovery["authorization_endpoint"] + "?")
    request = query_of(authorization_url)
    assert request["client_id"] == credentials["client_id"]
    assert request["code_challenge_method"] == "S256" and request["code_challenge"]
    assert request["state"] and request["nonce"]
    assert set(request["scope"].split()) == {"openid", "profile", "email"}

    response = sign_in(new_browser(), authorization_url)
    assert response["state"] == request["state"]
    assert response["iss"] == live_idp.url  # RFC 9207
    assert "code" in response

    result = rp.finalize(live_idp.url, response)
    assert "error" not in result, result
    id_token = result["id_token"].to_dict()
    assert id_token["iss"] == live_idp.url
    assert credentials["client_id"] in (
        id_token["aud"] if isinstance(id_token["aud"], list) else [id_token["aud"]]
    )
    assert id_token["nonce"] == request["nonce"]
    assert id_token["email"] == EMAIL
    userinfo = result["userinfo"].to_dict()
    assert userinfo["sub"] == id_token["sub"]
    assert userinfo["email"] == EMAIL
    assert userinfo["name"] == "Alice Liddell"

    # The library checked the signature with keys it fetched from our jwks_uri.
    published = new_browser().get(discovery["jwks_uri"], timeout=10).json()["keys"]
    client = rp.issuer2rp[live_idp.url]
    held = {key.kid for key in client.keyjar.get_issuer_keys(live_idp.url)}
    assert held and held <= {key["kid"] for key in published}
    assert result["id_token"].jws_header["kid"] in held


def test_idpyoidc_refuses_an_id_token_whose_signature_was_altered(live_idp: LiveIdp) -> None:
    credentials = seed(live_idp)
    session = new_browser()
    token_endpoint = f"{live_idp.url}/token"

    def tampering(method: str, url: str, **kwargs: Any) -> requests.Response:
        response = session.request(method, url, **kwargs)
        if url == token_endpoint and response.status_code == 200:
            body = response.json()
            header, payload, signature = body["id_token"].split(".")
            middle = len(signature) // 2
            flipped = "A" if signature[middle] != "A" else "B"
            body["id_token"] = ".".join(
                (header, payload, signature[:middle] + flipped + signature[middle + 1 :])
            )
            response._content = json.dumps(body).encode()
        return response

    rp = build_rp(live_idp, credentials, httpc=tampering)
    from cryptojwt.exception import BadSignature

    authorization_url = rp.begin(issuer_id=live_idp.url)
    response = sign_in(new_browser(), authorization_url)
    with pytest.raises(BadSignature):
        rp.finalize(live_idp.url, response)


def test_a_second_browser_does_not_inherit_the_first_ones_login(live_idp: LiveIdp) -> None:
    credentials = seed(live_idp)
    rp = build_rp(live_idp, credentials)
    first = sign_in(new_browser(), rp.begin(issuer_id=live_idp.url))
    assert "code" in first
    # Another person, no cookies, same worker process: the IdP must ask them to sign in.
    url = rp.begin(issuer_id=live_idp.url)
    response = new_browser().get(url, allow_redirects=False, timeout=10)
    assert response.is_redirect
    location = urljoin(url, response.headers["Location"])
    assert urlsplit(location).path == "/login", location


def readme_snippet() -> str:
    section = README.read_text().split("## Integrate an app", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_flask_snippet_signs_in(
    live_idp: LiveIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirect_uri = "http://localhost/callback"  # url_for(..., _external=True) in the test client
    credentials = seed(live_idp, redirect_uri)
    monkeypatch.setenv("SECRET_KEY", "readme-snippet-secret-key")
    monkeypatch.setenv("CLIENT_ID", credentials["client_id"])
    monkeypatch.setenv("CLIENT_SECRET", credentials["client_secret"])
    source = readme_snippet()
    assert "http://127.0.0.1:5000/.well-known/openid-configuration" in source
    namespace: dict[str, Any] = {"__name__": "photos"}
    code = compile(source.replace("http://127.0.0.1:5000", live_idp.url), "README.md", "exec")
    exec(code, namespace)  # noqa: S102 (our own README, tested as written)
    http = namespace["app"].test_client()

    start = http.get("/login")
    assert start.status_code == 302
    assert start.headers["Location"].startswith(f"{live_idp.url}/authorize?")
    request = query_of(start.headers["Location"])
    assert request["code_challenge_method"] == "S256" and request["nonce"]
    response = sign_in(new_browser(), start.headers["Location"], redirect_uri=redirect_uri)
    done = http.get("/callback", query_string=response)
    assert done.status_code == 200, done.text
    assert done.text == "Hello Alice Liddell"
