"""The OpenAPI document is valid OpenAPI 3.1, complete, and the API keeps to it under fuzzing."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import seed
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis import checks
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy import select

from idp import db
from idp.admin import api
from idp.models import AuditEvent
from idp.models import LoginSession
from idp.models import OAuthClient
from idp.models import ServiceProvider
from idp.models import User
from tests.admin.conftest import API
from tests.admin.conftest import Bearer
from tests.conftest import run_backends

DOCUMENT = f"{API}/openapi.json"


def test_document_is_valid_openapi_31(http: FlaskClient) -> None:
    response = http.get(DOCUMENT)
    assert response.status_code == 200
    document = response.get_json()
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"] == "3.1.0"


def test_document_lists_every_route_of_the_app(app: Flask, http: FlaskClient) -> None:
    document = http.get(DOCUMENT).get_json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API):
            path = rule.rule.replace("<int:", "{").replace("<string:", "{").replace(">", "}")
            served |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def _state(app: Flask) -> list[Any]:
    """Everything a refused request must leave alone."""
    with app.app_context():
        session = db.get_session()
        return [
            list(
                session.execute(
                    select(
                        User.id,
                        User.email,
                        User.name,
                        User.is_admin,
                        User.is_disabled,
                        User.password_hash,
                    )
                )
            ),
            list(
                session.execute(
                    select(
                        OAuthClient.client_id,
                        OAuthClient.client_name,
                        OAuthClient.scope,
                        OAuthClient.is_disabled,
                        OAuthClient.client_secret_hash,
                        OAuthClient.redirect_uris,
                    )
                )
            ),
            list(
                session.execute(
                    select(
                        ServiceProvider.id,
                        ServiceProvider.attributes,
                        ServiceProvider.name_id_format,
                    )
                )
            ),
            list(session.execute(select(LoginSession.sid, LoginSession.revoked_at))),
            list(session.scalars(select(AuditEvent.event).order_by(AuditEvent.id))),
        ]


# Invalid input needs something that can be invalid: a string path parameter cannot be left
# out, nor can an XML body (any string) be anything but a string.
CASES = [
    (op.method, op.path, mode)
    for op in api.OPERATIONS
    if not op.public
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or op.query is not None
    or op.body is not None
    or int in op.path_params.values()
]
# A well-formed cursor or SAML metadata may still be refused (not issued here, not metadata):
# everything else schemathesis checks holds.
EXCLUDED_CHECKS = [checks.positive_data_acceptance]


_LOADED: list[OpenApiSchema] = []


def _loaded(app: Flask) -> OpenApiSchema:
    """The served document as schemathesis loads it, once per run (per xdist worker).

    Loading parses the document and reads the app's modules for constants to draw from: loaded
    for each test's app (the same code and document), it cost more than the examples themselves.
    """
    if not _LOADED:
        _LOADED.append(schemathesis.openapi.from_wsgi(DOCUMENT, app))
    return _LOADED[0]


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES]
)
def test_api_keeps_to_its_document(
    app: Flask,
    robot_token: Bearer,
    admin: Any,
    method: str,
    path: str,
    mode: GenerationMode,
    db_backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """Generated requests get documented answers and no 5xx; a refusal changes nothing."""
    operation = _loaded(app)[API + path][method]
    # 10 examples per operation and mode in a run (the largest file of the suite at 25),
    # shared out among the databases run: each draws its own from a seed of its own, fixed so
    # a failure reproduces, instead of both drawing the same ones.
    backends = run_backends(request.config, request.node)

    @seed(zlib.crc32(db_backend.encode()))
    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=-(-10 // len(backends)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Any) -> None:
        case.headers = {**(case.headers or {}), **robot_token.headers}
        before = _state(app)
        response = case.call(app=app)  # this test's app, not the one the document came from
        assert response.status_code < 500, response.text
        case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
        if response.status_code >= 400:
            assert _state(app) == before, "a refused request changed something"

    check()
