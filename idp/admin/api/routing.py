"""The admin API's plumbing: its blueprint, errors, authentication, route table and paging.

Each resource module declares its operations with :func:`route`; the OpenAPI document is built
from the same table (``OPERATIONS``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError

from idp import audit
from idp.admin import schemas
from idp.admin.openapi import API_PREFIX
from idp.admin.openapi import XML_MEDIA_TYPES
from idp.admin.openapi import Operation
from idp.admin.openapi import build_document
from idp.errors import ApiError
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.errors import build_problem
from idp.oidc import clients
from idp.oidc import tokens
from idp.settings import get_settings

bp = Blueprint("admin_api", __name__, url_prefix=API_PREFIX)
OPERATIONS: list[Operation] = []
Row = TypeVar("Row")


# -- errors ----------------------------------------------------------------------------------


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> ResponseReturnValue:
    headers = []
    if error.status in (401, 403):
        # RFC 6750 §3: the challenge names the error once a token was presented.
        challenge = 'Bearer realm="admin", scope="admin"'
        if error.code:
            challenge += f', error="{error.code}"'
        headers.append(("WWW-Authenticate", challenge))
    return build_problem(error.status, str(error), headers=headers)


class FieldError(ApiError):
    """One parameter is invalid in a way its schema cannot say."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(400, "", f"{field}: {message}")
        self.field = field
        self.message = message


@bp.errorhandler(FieldError)
def _field_error(error: FieldError) -> ResponseReturnValue:
    fields = [{"field": error.field, "message": error.message}]
    return build_problem(400, "The request is invalid: see errors.", errors=fields)


@bp.errorhandler(ValidationError)
def _validation_error(error: ValidationError) -> ResponseReturnValue:
    fields = [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    return build_problem(400, "The request is invalid: see errors.", errors=fields)


@bp.errorhandler(InvalidInputError)
def _invalid(error: InvalidInputError) -> ResponseReturnValue:
    return build_problem(400, str(error))


@bp.errorhandler(NotFoundError)
def _not_found(error: NotFoundError) -> ResponseReturnValue:
    return build_problem(404, str(error))


@bp.errorhandler(ConflictError)
def _conflict(error: ConflictError) -> ResponseReturnValue:
    return build_problem(409, str(error))


# -- the route table ---------------------------------------------------------------------------


def _authenticate() -> None:
    """Admit a live Bearer access token with the admin scope whose holder may still use it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "", "A Bearer access token with the admin scope is required.")
    bearer = tokens.authenticate_bearer(token.strip(), request.remote_addr, resource="admin_api")
    if bearer is None:
        raise ApiError(401, "invalid_token", "The access token is invalid, expired or revoked.")
    if clients.ADMIN_SCOPE not in bearer.scopes:
        raise ApiError(403, "insufficient_scope", "The access token lacks the admin scope.")
    if not bearer.may_administer:
        # A demoted admin's token, or a service account no longer registered with the scope.
        raise ApiError(401, "invalid_token", "The token's holder is no longer an admin.")
    if bearer.user is not None:
        audit.set_actor(user_id=bearer.user.id)
    elif bearer.client is not None:
        audit.set_actor(client_id=bearer.client.client_id)


def _parse_body(op: Operation) -> Any:
    if op.xml_body:
        if request.mimetype not in XML_MEDIA_TYPES:
            raise ApiError(415, "", f"Send the metadata as {XML_MEDIA_TYPES[0]}.")
        return request.get_data()
    assert op.body is not None  # noqa: S101 (only called for operations with a body)
    raw = request.get_data()
    if not raw and op.body_optional:
        return op.body()
    if request.mimetype != "application/json":
        raise ApiError(415, "", "Send the body as application/json.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "", "The body is not valid JSON.") from None
    return op.body.model_validate(data)


def _view(op: Operation, handler: Callable[..., Any]) -> Callable[..., ResponseReturnValue]:
    def view(**path: Any) -> ResponseReturnValue:
        if not op.public:
            _authenticate()
        arguments = dict(path)
        if op.query is not None:
            arguments["query"] = op.query.model_validate(request.args.to_dict())
        if op.body is not None or op.xml_body:
            arguments["body"] = _parse_body(op)
        result = handler(**arguments)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status=204)
        response = jsonify(result.model_dump(mode="json"))
        response.status_code = op.status
        response.headers["Cache-Control"] = "no-store"
        return response

    return view


def route(
    method: str, path: str, summary: str, *, status: int = 200, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an operation: register its Flask rule and its entry in the OpenAPI document."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(method, path, handler.__name__, summary, status, **options)
        OPERATIONS.append(op)
        rule = path
        for name, kind in op.path_params.items():
            rule = rule.replace(f"{{{name}}}", f"<{'int' if kind is int else 'string'}:{name}>")
        bp.add_url_rule(rule, handler.__name__, _view(op, handler), methods=[method])
        return handler

    return decorate


# -- paging ----------------------------------------------------------------------------------


def _cursor(key: int) -> str:
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def cursor_after(query: schemas.Query) -> int | None:
    """Return the id the query's cursor points after (opaque to callers)."""
    if query.cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(query.cursor + "=" * (-len(query.cursor) % 4)).decode()
        if text[:1] == "k" and text[1:].isdigit() and len(text) < 20:
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise FieldError("cursor", "not a cursor this API issued")


def page_of(
    query: schemas.Query, fetch: Callable[[int | None, int], list[Row]]
) -> tuple[list[Row], str | None]:
    """Return one page of ``fetch(after, limit)`` and the next page's cursor (rows keyed by id).

    ``after`` is the id the query's cursor points past; one row more than the page is fetched
    to learn whether another page follows.
    """
    limit = query.limit
    rows = fetch(cursor_after(query), limit + 1)
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _cursor(rows[limit - 1].id)  # type: ignore[attr-defined]


# -- the document ----------------------------------------------------------------------------


@route("GET", "/openapi.json", "This document (OpenAPI 3.1)", public=True, tag="meta")
def openapi_document() -> ResponseReturnValue:
    issuer = get_settings().issuer
    return jsonify(build_document(OPERATIONS, issuer))
