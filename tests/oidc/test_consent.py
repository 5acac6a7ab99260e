"""The consent page for untrusted clients: Allow, Deny, remembered scopes, CSRF, audit."""

from __future__ import annotations

import html
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models.audit import AuditEvent
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import Consent
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers.forms import csrf_token
from tests.helpers.rows import count

ISSUER = "http://idp.test"


def consents(app: Flask) -> list[tuple[int, str, list[str]]]:
    with app.app_context():
        rows = db.get_session().scalars(select(Consent).order_by(Consent.id))
        return [(row.user_id, row.client_id, list(row.scopes)) for row in rows]


def audit_events(app: Flask, event: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.get_session().scalars(select(AuditEvent).where(AuditEvent.event == event))
        events = list(rows)
        db.get_session().expunge_all()
        return events


def consent_page(http: FlaskClient, client: oidc.Client, **params: str) -> Any:
    response = oidc.authorize(http, client, **params)
    assert response.status_code == 200, response.data[:300]
    assert b'name="decision"' in response.data
    return response


def form_action(page: Any) -> str:
    match = re.search(r'<form method="post" action="([^"]+)">', page.data.decode())
    assert match, "no form on the consent page"
    return html.unescape(match.group(1))


def decide(http: FlaskClient, page: Any, decision: str, **form: str) -> Any:
    """Press a button of the consent form, as a browser would."""
    data = {"csrf_token": csrf_token(page.data), "decision": decision, **form}
    return http.post(form_action(page), data=data)


def test_untrusted_client_shows_the_requested_scopes(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, "Notes & <Co>", is_trusted=False)
    page = consent_page(http, client, scope="openid email frobnicate")
    text = page.data.decode().split("<form")[0]  # what the user reads, not the form action
    assert "Notes &amp; &lt;Co&gt;" in text
    assert "<Co>" not in text
    assert "Confirm who you are" in text
    assert "Your e-mail address" in text
    assert "Your name and profile" not in text  # profile was not asked for
    assert "frobnicate" not in text  # unknown scopes are dropped
    assert logged_in.email in text
    # The promise holds: /account/apps lists the consent with a "revoke" button.
    assert 'You can change this later in <a href="/account/apps">' in text
    assert page.headers.get("X-Frame-Options") == "DENY" or "frame-ancestors" in page.headers.get(
        "Content-Security-Policy", ""
    )
    assert count(app, AuthorizationCode) == 0
    assert consents(app) == []


def test_allow_gives_a_code_and_is_remembered(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client, scope="openid email")
    response = decide(http, page, "allow")
    assert response.status_code == 302
    query = oidc.query_of(response.headers["Location"])
    assert query["state"] == "state-123" and query["iss"] == ISSUER
    body = oidc.exchange(http, client, query["code"]).get_json()
    assert body["scope"] == "openid email"
    assert consents(app) == [(logged_in.id, client.client_id, ["email", "openid"])]
    [granted] = audit_events(app, "consent_granted")
    assert granted.user_id == logged_in.id and granted.rp == client.client_id
    assert granted.sid is not None
    assert granted.details["scope"] == "email openid"
    # The second authorization skips the page.
    again = oidc.authorize(http, client, scope="openid email", nonce="second")
    assert again.status_code == 302
    assert "code" in oidc.query_of(again.headers["Location"])
    # A narrower request is covered by the consent too.
    narrower = oidc.authorize(http, client, scope="openid", nonce="third")
    assert narrower.status_code == 302
    assert len(audit_events(app, "consent_granted")) == 1


def test_wider_scope_asks_again_and_widens_the_consent(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    decide(http, consent_page(http, client, scope="openid"), "allow")
    page = consent_page(http, client, scope="openid profile", nonce="second")
    assert "Your name and profile" in page.data.decode()
    assert consents(app) == [(logged_in.id, client.client_id, ["openid"])]
    response = decide(http, page, "allow")
    assert response.status_code == 302
    assert consents(app) == [(logged_in.id, client.client_id, ["openid", "profile"])]
    assert len(audit_events(app, "consent_granted")) == 2


def test_consent_is_per_user_and_per_client(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    other = oidc.register(app, "Wiki", is_trusted=False)
    decide(http, consent_page(http, client), "allow")
    consent_page(http, other)


def test_deny_redirects_access_denied_and_stores_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client)
    response = decide(http, page, "deny")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(client.redirect_uri + "?")
    query = oidc.query_of(location)
    assert query["error"] == "access_denied"
    assert query["state"] == "state-123"
    assert query["iss"] == ISSUER
    assert "code" not in query
    assert count(app, AuthorizationCode) == 0
    assert consents(app) == []
    [denied] = audit_events(app, "consent_denied")
    assert denied.user_id == logged_in.id and denied.rp == client.client_id
    assert audit_events(app, "consent_granted") == []
    # Denying is not remembered: the next request asks again.
    consent_page(http, client, nonce="second")


def test_consent_without_csrf_token_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client)
    for form in ({"decision": "allow"}, {"decision": "allow", "csrf_token": "forged"}):
        response = http.post(page.request.full_path, data=form)
        assert response.status_code == 400
        assert "Location" not in response.headers
    assert count(app, AuthorizationCode) == 0
    assert consents(app) == []
    assert audit_events(app, "consent_granted") == []
    assert audit_events(app, "consent_denied") == []


def test_deny_without_csrf_token_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client)
    response = http.post(page.request.full_path, data={"decision": "deny"})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert audit_events(app, "consent_denied") == []


def test_consent_post_with_bad_redirect_uri_is_refused(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client)
    evil = oidc.Client(client.client_id, None, "https://evil.example/callback")
    path = oidc.authorize(http, evil).request.full_path
    response = http.post(path, data={"csrf_token": csrf_token(page.data), "decision": "allow"})
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert consents(app) == []


def test_unknown_decision_grants_nothing(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    client = oidc.register(app, is_trusted=False)
    page = consent_page(http, client)
    response = decide(http, page, "maybe")
    assert response.status_code == 302
    assert oidc.query_of(response.headers["Location"])["error"] == "access_denied"
    assert consents(app) == []
    assert count(app, AuthorizationCode) == 0


def test_authorization_request_may_be_a_post(
    app: Flask, http: FlaskClient, logged_in: TestUser
) -> None:
    # OIDC Core §3.1.2.1: the authorization endpoint MUST support GET and POST.
    client = oidc.register(app, is_trusted=False)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid email",
        "state": "state-123",
        "nonce": "nonce-456",
    }
    page = http.post("/authorize", data=params)
    assert page.status_code == 200 and b'name="decision"' in page.data
    response = decide(http, page, "allow")
    assert response.status_code == 302, response.data[:300]
    query = oidc.query_of(response.headers["Location"])
    assert query["state"] == "state-123"
    body = oidc.exchange(http, client, query["code"]).get_json()
    claims = oidc.decode(http, body["id_token"], audience=client.client_id)
    assert claims["nonce"] == "nonce-456" and claims["email"] == logged_in.email
    assert consents(app) == [(logged_in.id, client.client_id, ["email", "openid"])]


def test_post_authorization_request_survives_the_login(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    from tests.conftest import AuthActions

    client = oidc.register(app)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid",
        "state": "state-123",
    }
    hop = http.post("/authorize", data=params)
    assert hop.status_code == 303  # first a same-site GET, which would carry the cookie
    response = http.get(hop.headers["Location"])
    assert response.status_code == 302
    next_url = oidc.query_of(response.headers["Location"])["next"]
    assert oidc.query_of(next_url)["client_id"] == client.client_id
    AuthActions(http).login(user.email, user.password, next_url=next_url)
    back = http.get(next_url)
    assert back.status_code == 302
    assert oidc.query_of(back.headers["Location"])["state"] == "state-123"


def test_consent_page_needs_a_login(app: Flask, http: FlaskClient, user: TestUser) -> None:
    client = oidc.register(app, is_trusted=False)
    hop = http.post(oidc.authorize(http, client).request.full_path, data={"decision": "allow"})
    assert hop.status_code == 303
    assert "decision" not in oidc.query_of(hop.headers["Location"])
    response = http.get(hop.headers["Location"])
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert consents(app) == []
