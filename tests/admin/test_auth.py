"""Who may call the admin API: Bearer tokens with the admin scope, checked as a resource server."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from tests.admin.conftest import API
from tests.admin.conftest import Bearer
from tests.admin.conftest import client_credentials_token
from tests.admin.conftest import service_account
from tests.admin.conftest import user_token
from tests.conftest import Clock
from tests.conftest import TestUser
from tests.helpers import oidc

USERS = f"{API}/users"


def assert_refused(response, status: int) -> None:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_anonymous_and_malformed_tokens_get_401(http: FlaskClient, robot_token: Bearer) -> None:
    assert_refused(http.get(USERS), 401)
    assert_refused(http.get(USERS, headers={"Authorization": "Bearer"}), 401)
    assert_refused(http.get(USERS, headers={"Authorization": "Basic YTpi"}), 401)
    assert_refused(http.get(USERS, headers={"Authorization": "Bearer not-a-token"}), 401)
    forged = robot_token.token[:-4] + ("AAAA" if robot_token.token[-4:] != "AAAA" else "BBBB")
    assert_refused(http.get(USERS, headers={"Authorization": f"Bearer {forged}"}), 401)
    assert http.get(USERS, headers=robot_token.headers).status_code == 200


def test_admin_user_token_from_the_code_flow(http: FlaskClient, admin_token: Bearer) -> None:
    response = http.get(USERS, headers=admin_token.headers)
    assert response.status_code == 200
    assert [item["email"] for item in response.get_json()["items"]] == ["admin@example.com"]


def test_non_admin_user_never_gets_the_admin_scope(
    app: Flask, http: FlaskClient, user: TestUser
) -> None:
    token = user_token(app, user, scope="openid admin")
    introspection = _introspect(app, http, token.token)
    assert introspection["active"] and "admin" not in introspection["scope"].split()
    assert_refused(http.get(USERS, headers=token.headers), 403)


def test_wrong_scope_service_account_gets_403(app: Flask, http: FlaskClient) -> None:
    reporter = service_account(app, "Reporter", "reports")
    response = client_credentials_token(http, reporter, scope="admin")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"
    token = client_credentials_token(http, reporter, scope="reports").get_json()["access_token"]
    assert_refused(http.get(USERS, headers={"Authorization": f"Bearer {token}"}), 403)


def test_only_service_accounts_get_admin_without_a_user(app: Flask, http: FlaskClient) -> None:
    # A confidential app allowed the admin scope (for its admin users) is no service account.
    tool = oidc.register(app, "Admin tool", scope="openid admin")
    response = client_credentials_token(http, tool, scope="admin")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"


def test_expired_token_gets_401(http: FlaskClient, robot_token: Bearer, clock: Clock) -> None:
    assert http.get(USERS, headers=robot_token.headers).status_code == 200
    clock.advance(minutes=11)
    assert_refused(http.get(USERS, headers=robot_token.headers), 401)


def test_revoked_token_gets_401(
    app: Flask, http: FlaskClient, robot: oidc.Client, robot_token: Bearer
) -> None:
    response = http.post("/revoke", data={"token": robot_token.token}, auth=robot.basic_auth)
    assert response.status_code == 200
    assert_refused(http.get(USERS, headers=robot_token.headers), 401)


def test_token_of_an_ended_session_gets_401(
    http: FlaskClient, admin_token: Bearer, robot_token: Bearer
) -> None:
    sessions = http.get(f"{API}/sessions", headers=robot_token.headers).get_json()["items"]
    (session,) = sessions
    assert (
        http.delete(f"{API}/sessions/{session['id']}", headers=robot_token.headers).status_code
        == 204
    )
    assert_refused(http.get(USERS, headers=admin_token.headers), 401)


def test_demoted_admin_token_gets_401(
    http: FlaskClient, admin: TestUser, admin_token: Bearer, robot_token: Bearer
) -> None:
    response = http.patch(f"{USERS}/{admin.id}", json={"admin": False}, headers=robot_token.headers)
    assert response.status_code == 200 and response.get_json()["admin"] is False
    assert_refused(http.get(USERS, headers=admin_token.headers), 401)


def test_changes_are_audited_with_the_acting_admin(
    app: Flask, http: FlaskClient, admin: TestUser, admin_token: Bearer, robot, robot_token
) -> None:
    body = {"email": "bob@example.com", "name": "Bob"}
    assert http.post(USERS, json=body, headers=admin_token.headers).status_code == 201
    body = {"email": "carol@example.com", "name": "Carol"}
    assert http.post(USERS, json=body, headers=robot_token.headers).status_code == 201
    with app.app_context():
        rows = db.get_session().scalars(
            select(AuditEvent).where(AuditEvent.event == "user_created").order_by(AuditEvent.id)
        )
        actors = [
            (
                row.details.get("email"),
                row.details.get("actor_user_id"),
                row.details.get("actor_client_id"),
            )
            for row in rows
        ]
    assert actors[-2:] == [
        ("bob@example.com", admin.id, None),
        ("carol@example.com", None, robot.client_id),
    ]


def _introspect(app: Flask, http: FlaskClient, token: str) -> dict:
    api = oidc.register(app, "Resource server", is_resource_server=True)
    response = http.post("/introspect", data={"token": token}, auth=api.basic_auth)
    assert response.status_code == 200
    return response.get_json()
