"""The admin API's route table and the OpenAPI 3.1 document generated from it.

Each route is declared once (``Operation``); the view wrapper and this document both read it,
and the schemas come from the Pydantic models (``model_json_schema``), so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode
from pydantic.json_schema import models_json_schema

from idp.errors import HTTP_STATUS_TITLES
from idp.errors import PROBLEM_MEDIA_TYPE

API_PREFIX = "/api/admin/v1"
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "admin_token"
NDJSON = "application/x-ndjson"
XML_MEDIA_TYPES = ("application/samlmetadata+xml", "application/xml", "text/xml")


@dataclass(frozen=True)
class Operation:
    """One route: what it takes, what it answers, and which errors it may give."""

    method: str
    path: str  # OpenAPI template below API_PREFIX: "/users/{id}"
    operation_id: str
    summary: str
    status: int
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False
    xml_body: bool = False  # the body is an XML document (SAML metadata)
    path_params: Mapping[str, type[int] | type[str]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    public: bool = False
    # The success response may also be JSON Lines, one object of this model a line.
    ndjson_item: type[BaseModel] | None = None
    description: str = ""
    tag: str = ""

    @property
    def has_input(self) -> bool:
        return self.query is not None or self.body is not None or self.xml_body

    @property
    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if not self.public:
            statuses |= {401, 403}
        if self.has_input:
            statuses.add(400)
        if self.body is not None or self.xml_body:
            statuses.add(415)
        if self.path_params:
            statuses.add(404)
        return sorted(statuses)


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    from idp.admin.schemas import Problem

    pairs: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for op in operations:
        if op.response is not None:
            pairs[(op.response, "serialization")] = None
        if op.body is not None:
            pairs[(op.body, "validation")] = None
        if op.ndjson_item is not None:
            pairs[(op.ndjson_item, "serialization")] = None
    return list(pairs)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name, kind in op.path_params.items():
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1} if kind is int else {"type": "string", "minLength": 1}
        )
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if op.query is not None:
        # Query models have flat, scalar fields: each property is one parameter.
        schema = op.query.model_json_schema(mode="validation")
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            prop = {key: value for key, value in prop.items() if key != "title"}
            description = prop.pop("description", None)
            if "default" in prop and prop["default"] is None:
                del prop["default"]
            # Optional means absent, never null: a query string has no null.
            variants = [item for item in prop.pop("anyOf", []) if item != {"type": "null"}]
            if variants:
                prop = {**variants[0], **prop}
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if description:
                parameter["description"] = description
            parameters.append(parameter)
    return parameters


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": HTTP_STATUS_TITLES[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if status in (401, 403):
        response["headers"] = {
            "WWW-Authenticate": {
                "description": "RFC 6750 §3 Bearer challenge.",
                "schema": {"type": "string"},
                "required": True,
            }
        }
    return response


def _success(op: Operation) -> dict[str, Any]:
    response: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        content: dict[str, Any] = {
            "application/json": {"schema": {"$ref": REF.format(model=op.response.__name__)}}
        }
        if op.ndjson_item is not None:
            content[NDJSON] = {
                "schema": {
                    "type": "string",
                    "description": f"One {op.ndjson_item.__name__} JSON object a line.",
                },
                "x-item-schema": {"$ref": REF.format(model=op.ndjson_item.__name__)},
            }
        response["content"] = content
    return response


def _operation(op: Operation) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": {
            str(op.status): _success(op),
            **{str(status): _problem(status) for status in op.error_statuses},
        },
        "security": [] if op.public else [{SECURITY_SCHEME: ["admin"]}],
    }
    if op.description:
        document["description"] = op.description
    if op.body is not None:
        document["requestBody"] = {
            "required": not op.body_optional,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}
            },
        }
    elif op.xml_body:
        document["requestBody"] = {
            "required": True,
            "content": {media: {"schema": {"type": "string"}} for media in XML_MEDIA_TYPES},
        }
    return document


def build_document(operations: list[Operation], issuer: str) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document of ``operations`` (served at ``/openapi.json``)."""
    _, definitions = models_json_schema(_models(operations), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = _operation(op)
    admin_scope = {"admin": "The admin API (admin users and service accounts only)."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idp admin API",
            "version": "1",
            "description": (
                "Manage users, OIDC clients, SAML service providers, login sessions, signing "
                "keys and the audit log. Every request carries a Bearer access token with the "
                "`admin` scope; errors are RFC 9457 problem details."
            ),
        },
        "servers": [{"url": issuer}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "oauth2",
                    "description": (
                        "An admin user's access token (authorization code flow), or a "
                        "service account's client_credentials token, with the admin scope."
                    ),
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": f"{issuer}/token",
                            "scopes": admin_scope,
                        },
                        "authorizationCode": {
                            "authorizationUrl": f"{issuer}/authorize",
                            "tokenUrl": f"{issuer}/token",
                            "scopes": admin_scope,
                        },
                    },
                }
            },
        },
    }
