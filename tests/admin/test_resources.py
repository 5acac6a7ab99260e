"""Users, clients, SAML SPs, keys and the audit log through the admin API."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent
from idp.models import OAuthToken
from tests.admin.conftest import API
from tests.admin.conftest import Bearer
from tests.admin.conftest import client_credentials_token
from tests.admin.conftest import user_token
from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body: dict = response.get_json()
    return body


def test_users_create_search_page_update(http: FlaskClient, robot_token: Bearer) -> None:
    h = robot_token.headers
    for name in ("Alice Liddell", "Bob Builder", "Alina Smith"):
        email = name.split()[0].lower() + "@example.com"
        response = http.post(f"{API}/users", json={"email": email, "name": name}, headers=h)
        assert response.status_code == 201
    found = http.get(f"{API}/users", query_string={"q": "ALI"}, headers=h).get_json()
    assert [item["name"] for item in found["items"]] == ["Alice Liddell", "Alina Smith"]
    first = http.get(f"{API}/users", query_string={"limit": 2}, headers=h).get_json()
    rest = http.get(
        f"{API}/users", query_string={"limit": 2, "cursor": first["next"]}, headers=h
    ).get_json()
    assert [u["name"] for u in first["items"] + rest["items"]] == [
        "Alice Liddell",
        "Bob Builder",
        "Alina Smith",
    ]
    assert rest["next"] is None
    alice = first["items"][0]
    response = http.patch(f"{API}/users/{alice['id']}", json={"name": "Alice L."}, headers=h)
    assert response.get_json()["name"] == "Alice L."
    assert http.get(f"{API}/users/{alice['id']}", headers=h).get_json()["name"] == "Alice L."
    # Refused input names the field and changes nothing.
    body = problem(http.post(f"{API}/users", json={"email": "no", "name": ""}, headers=h), 400)
    assert {error["field"] for error in body["errors"]} == {"email", "name"}
    body = problem(http.patch(f"{API}/users/{alice['id']}", json={"nme": "x"}, headers=h), 400)
    assert body["errors"][0]["field"] == "nme"
    problem(
        http.post(f"{API}/users", json={"email": "bob@example.com", "name": "B"}, headers=h), 409
    )
    problem(
        http.post(f"{API}/users", data="{", headers={**h, "Content-Type": "application/json"}), 400
    )
    problem(http.post(f"{API}/users", data="x=1", headers=h), 415)
    problem(http.get(f"{API}/users/999", headers=h), 404)
    problem(http.get(f"{API}/users/99999999999999999999", headers=h), 404)
    assert len(http.get(f"{API}/users", headers=h).get_json()["items"]) == 3


def test_disable_reset_password_and_delete_end_sessions(
    app: Flask, http: FlaskClient, user: TestUser, robot_token: Bearer
) -> None:
    h = robot_token.headers
    user_token(app, user, scope="openid")
    assert len(http.get(f"{API}/sessions", headers=h).get_json()["items"]) == 1
    response = http.patch(f"{API}/users/{user.id}", json={"disabled": True}, headers=h)
    assert response.get_json()["disabled"] is True
    assert http.get(f"{API}/sessions", headers=h).get_json()["items"] == []
    http.patch(f"{API}/users/{user.id}", json={"disabled": False}, headers=h)

    user_token(app, user, scope="openid")
    response = http.post(
        f"{API}/users/{user.id}/password", json={"password": "a new password"}, headers=h
    )
    assert response.status_code == 204
    assert http.get(f"{API}/sessions", headers=h).get_json()["items"] == []
    browser = app.test_client()
    assert AuthActions(browser).login(user.email, user.password).status_code != 302  # refused
    assert AuthActions(browser).login(user.email, "a new password").status_code == 302

    user_token(app, TestUser(user.id, user.email, "a new password", user.name), scope="openid")
    assert http.delete(f"{API}/users/{user.id}", headers=h).status_code == 204
    problem(http.get(f"{API}/users/{user.id}", headers=h), 404)
    assert http.get(f"{API}/sessions", headers=h).get_json()["items"] == []
    with app.app_context():
        session = db.get_session()
        assert (
            session.scalar(
                select(func.count()).select_from(OAuthToken).where(OAuthToken.user_id == user.id)
            )
            == 0
        )
        events = set(session.scalars(select(AuditEvent.event).where(AuditEvent.user_id == user.id)))
    assert {"login_success", "session_revoked", "user_deleted"} <= events


def test_clients_create_update_rotate_delete(app: Flask, http: FlaskClient, robot_token) -> None:
    h = robot_token.headers
    body = {"client_name": "Batch", "service_account": True, "scope": ["reports"]}
    created = http.post(f"{API}/clients", json=body, headers=h)
    assert created.status_code == 201
    batch = created.get_json()
    assert batch["grant_types"] == ["client_credentials"] and batch["client_secret"]
    client = oidc.Client(batch["client_id"], batch["client_secret"])
    token = client_credentials_token(http, client, scope="reports").get_json()["access_token"]

    response = http.patch(
        f"{API}/clients/{client.client_id}", json={"client_name": "Batch jobs"}, headers=h
    )
    assert response.get_json()["client_name"] == "Batch jobs"
    body = problem(
        http.patch(
            f"{API}/clients/{client.client_id}", json={"redirect_uris": ["javascript:x"]}, headers=h
        ),
        400,
    )
    assert "redirect URI" in body["detail"]

    rotated = http.post(f"{API}/clients/{client.client_id}/secret", headers=h).get_json()
    assert client_credentials_token(http, client, scope="reports").status_code == 401
    client = oidc.Client(client.client_id, rotated["client_secret"])
    assert client_credentials_token(http, client, scope="reports").status_code == 200

    resource_server = oidc.register(app, "API", is_resource_server=True)
    assert http.delete(f"{API}/clients/{client.client_id}", headers=h).status_code == 204
    introspection = http.post(
        "/introspect", data={"token": token}, auth=resource_server.basic_auth
    ).get_json()
    assert introspection == {"active": False}
    problem(http.get(f"{API}/clients/{client.client_id}", headers=h), 404)
    listed = http.get(f"{API}/clients", headers=h).get_json()["items"]
    assert client.client_id not in {item["client_id"] for item in listed}


def test_service_providers_import_update_delete(http: FlaskClient, robot_token: Bearer) -> None:
    h = robot_token.headers
    metadata = saml.sp_metadata(saml.sp_settings(http))
    xml = {**h, "Content-Type": "application/samlmetadata+xml"}
    response = http.post(f"{API}/service-providers", data=metadata, headers=xml)
    assert response.status_code == 201, response.data
    sp = response.get_json()
    assert sp["entity_id"] == saml.SP_ENTITY_ID and sp["attributes"] is None
    problem(http.post(f"{API}/service-providers", data=metadata, headers=xml), 409)
    problem(http.post(f"{API}/service-providers", data=b"<nope/>", headers=xml), 400)
    url = f"{API}/service-providers/{sp['id']}"
    body = {"attributes": ["mail", "displayName"], "name_id_format": "emailAddress"}
    updated = http.patch(url, json=body, headers=h).get_json()
    assert updated["attributes"] == ["email", "name"] and updated["name_id_format"] == saml.EMAIL
    # emailAddress without mail released would hand out what is withheld: refused, unchanged.
    problem(http.patch(url, json={"attributes": ["displayName"]}, headers=h), 400)
    problem(http.patch(url, json={"attributes": ["shoe_size"]}, headers=h), 400)
    assert http.get(url, headers=h).get_json()["attributes"] == ["email", "name"]
    assert http.patch(url, json={"attributes": None}, headers=h).get_json()["attributes"] is None
    assert http.delete(url, headers=h).status_code == 204
    problem(http.get(url, headers=h), 404)


def test_keys_list_and_rotate(http: FlaskClient, robot_token: Bearer) -> None:
    h = robot_token.headers
    before = http.get(f"{API}/keys", headers=h).get_json()
    assert before["next"] is None and before["items"]
    created = http.post(f"{API}/keys/rotate", headers=h).get_json()["items"]
    assert {key["state"] for key in created} == {"next"}
    after = {key["kid"] for key in http.get(f"{API}/keys", headers=h).get_json()["items"]}
    assert {key["kid"] for key in created} <= after
    problem(http.post(f"{API}/keys/rotate", json={"immediate": "yes"}, headers=h), 400)


def test_audit_events_filter_page_export(
    app: Flask, http: FlaskClient, user: TestUser, robot_token: Bearer, clock
) -> None:
    h = robot_token.headers
    user_token(app, user, scope="openid")
    started = clock.now.isoformat()
    clock.advance(minutes=1)
    http.post(f"{API}/keys/rotate", headers=h)
    events = http.get(f"{API}/audit-events", query_string={"user": user.email}, headers=h)
    types = [item["type"] for item in events.get_json()["items"]]
    assert "login_success" in types and "key_rotated" not in types
    rotated = http.get(
        f"{API}/audit-events", query_string={"type": "key_rotated", "since": started}, headers=h
    ).get_json()["items"]
    assert rotated and all(item["details"]["actor_client_id"] for item in rotated)
    before = http.get(
        f"{API}/audit-events", query_string={"type": "key_rotated", "until": started}, headers=h
    ).get_json()["items"]
    assert before == []
    everything = http.get(f"{API}/audit-events", query_string={"limit": 100}, headers=h)
    ids = [item["id"] for item in everything.get_json()["items"]]
    assert ids == sorted(ids, reverse=True)
    page = http.get(f"{API}/audit-events", query_string={"limit": 2}, headers=h).get_json()
    second = http.get(
        f"{API}/audit-events", query_string={"limit": 2, "cursor": page["next"]}, headers=h
    ).get_json()
    assert [item["id"] for item in page["items"] + second["items"]] == ids[:4]
    for request in (
        {"headers": {**h, "Accept": "application/x-ndjson"}},
        {"headers": h, "query_string": {"format": "jsonl"}},
    ):
        export = http.get(f"{API}/audit-events", **request)
        assert export.mimetype == "application/x-ndjson"
        lines = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
        assert [line["id"] for line in lines] == ids
    body = problem(
        http.get(f"{API}/audit-events", query_string={"since": "yesterday"}, headers=h), 400
    )
    assert body["errors"][0]["field"] == "since"
