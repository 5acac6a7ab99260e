"""One login, two protocols: SAML after OIDC asks no password; both share the login's sid."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import LoginSession
from idp.models import SamlSessionIndex
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml


def test_saml_after_oidc_asks_no_password(
    app: Flask, http: FlaskClient, sp: dict[str, Any], auth: AuthActions, user: TestUser
) -> None:
    client = oidc.register(app)
    verifier, challenge = oidc.pkce_pair()
    response = oidc.authorize(http, client, code_challenge=challenge, code_challenge_method="S256")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    next_url = oidc.query_of(response.headers["Location"])["next"]
    assert auth.login(user.email, user.password, next_url=next_url).status_code == 302
    code = oidc.get_code(http, client, code_challenge=challenge, code_challenge_method="S256")
    tokens = oidc.exchange(http, client, code, code_verifier=verifier).get_json()
    id_token = oidc.decode(http, tokens["id_token"], audience=client.client_id)

    response, request_id = saml.sso(http, sp)
    assert response.status_code == 200  # the POST form itself: no login page in between
    sp_auth = saml.process_response(sp, saml.read_form(response), request_id)
    assert sp_auth.get_errors() == [], sp_auth.get_last_error_reason()
    assert sp_auth.get_attribute("urn:oid:0.9.2342.19200300.100.1.3") == [user.email]
    assert len(saml.audit_events(app, "login_success")) == 1  # one password, typed once
    with app.app_context():
        login = db.get_session().scalar(select(LoginSession))
        record = db.get_session().scalar(select(SamlSessionIndex))
        assert login is not None and record is not None
        assert login.sid == id_token["sid"]
        assert record.login_session_id == login.id
        assert record.session_index == sp_auth.get_session_index()
    event = saml.audit_events(app, "assertion_issued")[-1]
    assert event.sid == id_token["sid"]
