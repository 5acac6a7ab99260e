"""Every HTML page carries a strict CSP (no inline script), nosniff and Referrer-Policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.admin.conftest import ADMIN_PASSWORD
from tests.conftest import AuthActions
from tests.conftest import make_user
from tests.helpers import oidc
from tests.helpers import receiver as rx
from tests.helpers import saml
from tests.helpers.forms import csrf_token

TEMPLATES = Path(__file__).resolve().parents[1] / "idp" / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:", re.I)
NOTES_FC = "https://notes.example.com/frontchannel"
# Pages showing a signed-in person's data: never stored by a cache or kept in the history.
PERSONAL = [
    "/",
    "/account/",
    "/account/apps",
    "/account/security",
    "/account/sessions",
    "/account/tokens",
    "/admin/",
    "/admin/apps",
    "/admin/audit",
    "/admin/keys",
    "/admin/sessions",
    "/admin/users",
]


def policy(response: Any) -> dict[str, str]:
    """The page's Content-Security-Policy as {directive: sources}."""
    directives = (
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    return {name: rest for name, rest in directives}


def assert_strict(response: Any, frame_ancestors: str = "'none'") -> dict[str, str]:
    assert response.mimetype == "text/html", response.request.path
    csp = policy(response)
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["frame-ancestors"] == frame_ancestors
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    body = response.get_data(as_text=True)
    assert not INLINE_SCRIPT.search(body), (response.request.path, INLINE_SCRIPT.search(body))
    return csp


def test_no_template_has_an_inline_script() -> None:
    templates = list(TEMPLATES.rglob("*.html"))
    assert len(templates) > 20
    offenders = [str(path) for path in templates if INLINE_SCRIPT.search(path.read_text())]
    assert offenders == []


def test_every_page_without_parameters_is_strict(app: Flask, http: FlaskClient) -> None:
    """Walk app.url_map: every GET route without arguments, logged out then as an admin."""
    admin = make_user(app, "admin@example.com", ADMIN_PASSWORD, is_admin=True)
    rules = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and not rule.arguments and rule.endpoint != "static"
    ]
    pages = 0
    for logged_in in (False, True):
        if logged_in:
            assert AuthActions(http).login(admin.email, admin.password).status_code == 302
        for path in rules:
            with http.get(path) as response:
                assert response.status_code != 500, path
                assert response.headers["X-Content-Type-Options"] == "nosniff", path
                if response.mimetype == "text/html":
                    assert_strict(response)
                    pages += 1
                    if logged_in and response.status_code == 200 and path in PERSONAL:
                        assert response.headers.get("Cache-Control") == "no-store", path
    assert pages >= 15  # login, errors, logout, home, account and admin pages
    assert set(PERSONAL) <= set(rules)


def test_error_pages_are_strict(http: FlaskClient) -> None:
    assert_strict(http.get("/no/such/page"))
    assert_strict(http.get("/authorize?client_id=nobody&response_type=code"))


def test_consent_and_form_post_pages_are_strict(
    app: Flask, http: FlaskClient, logged_in: Any
) -> None:
    client = oidc.register(app, "Notes", is_trusted=False)
    consent = oidc.authorize(http, client, response_mode="form_post")
    assert consent.status_code == 200
    assert_strict(consent)
    form = {"csrf_token": csrf_token(consent.data), "decision": "allow"}
    posted = http.post(consent.request.full_path, data=form)
    assert_strict(posted)
    # The page carries the code (and the consent page the user's name): never cached.
    assert consent.headers["Cache-Control"] == posted.headers["Cache-Control"] == "no-store"
    body = posted.get_data(as_text=True)
    assert '<script src="/static/continue.js" defer></script>' in body
    assert "data-autosubmit" in body
    # The form posts to the app's origin: no form-action stands in the way.
    assert "form-action" not in policy(posted)


def test_the_logged_out_page_may_frame_the_apps(
    app: Flask, http: FlaskClient, logged_in: Any
) -> None:
    notes = oidc.register(app, "Notes", frontchannel_logout_uri=NOTES_FC)
    rx.sign_in_to(http, notes)
    page = AuthActions(http).logout()
    csp = assert_strict(page)
    assert csp["frame-src"] == "'self' https://notes.example.com"
    assert page.headers["X-Frame-Options"] == "DENY"


def test_the_saml_post_form_is_strict(app: Flask, http: FlaskClient, logged_in: Any) -> None:
    sp = saml.sp_settings(http)
    saml.register(app, sp)
    response, _ = saml.sso(http, sp)
    csp = assert_strict(response)
    assert response.headers["Cache-Control"] == "no-store"  # it carries the assertion
    assert "form-action" not in csp
    assert "data-autosubmit" in response.get_data(as_text=True)


def test_static_script_is_served_as_javascript(http: FlaskClient) -> None:
    with http.get("/static/continue.js") as script:
        assert script.status_code == 200
        assert script.mimetype in ("text/javascript", "application/javascript")
        assert script.headers["X-Content-Type-Options"] == "nosniff"


def test_hsts_only_when_the_issuer_is_https(settings: dict[str, Any], http: FlaskClient) -> None:
    from idp import create_app
    from idp.db import get_database

    assert "Strict-Transport-Security" not in http.get("/login").headers
    secure = create_app({**settings, "issuer": "https://idp.example.com"})
    try:
        page = secure.test_client().get("/login", base_url="https://idp.example.com")
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    finally:
        get_database(secure).engine.dispose()
