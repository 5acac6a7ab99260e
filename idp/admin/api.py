"""The admin REST API under ``/api/admin/v1``: HTTP only; every action is a service call.

Bearer tokens with the ``admin`` scope (the README's "Operate"); errors are RFC 9457 problem
details.

Over 400 lines because every resource's routes stand in one table, which is also the OpenAPI
document; the next step is one module per resource registering into that table.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request
from flask import stream_with_context
from flask.typing import ResponseReturnValue
from pydantic import BaseModel
from pydantic import ValidationError

from idp import audit
from idp.admin import schemas
from idp.admin.openapi import API_PREFIX
from idp.admin.openapi import NDJSON
from idp.admin.openapi import XML_MEDIA_TYPES
from idp.admin.openapi import Operation
from idp.admin.openapi import build_document
from idp.errors import ApiError
from idp.errors import ConflictError
from idp.errors import InvalidInputError
from idp.errors import NotFoundError
from idp.errors import build_problem
from idp.inputs import is_clean
from idp.keys import service as keys
from idp.mfa import service as mfa
from idp.oidc import clients
from idp.oidc import tokens
from idp.saml import registration as sps
from idp.sessions import service as sessions
from idp.settings import get_settings
from idp.tokens import service as pats
from idp.tokens import usage
from idp.users import service as users

if TYPE_CHECKING:
    from idp.models.user import User

bp = Blueprint("admin_api", __name__, url_prefix=API_PREFIX)
OPERATIONS: list[Operation] = []
Model = TypeVar("Model", bound=BaseModel)


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


def _after(query: schemas.Query) -> int | None:
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


def _page(rows: list[Any], limit: int, key: Callable[[Any], int]) -> tuple[list[Any], str | None]:
    """Split a fetch of ``limit + 1`` rows into the page and the next page's cursor."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], _cursor(key(rows[limit - 1]))


# -- the document ----------------------------------------------------------------------------


@route("GET", "/openapi.json", "This document (OpenAPI 3.1)", public=True, tag="meta")
def openapi_document() -> ResponseReturnValue:
    issuer = get_settings().issuer
    return jsonify(build_document(OPERATIONS, issuer))


# -- users -----------------------------------------------------------------------------------

USER: dict[str, Any] = {"path_params": {"id": int}, "tag": "users"}


@route(
    "GET", "/users", "List users", query=schemas.UserQuery, response=schemas.UserList, tag="users"
)
def list_users(query: schemas.UserQuery) -> schemas.UserList:
    rows = users.list_users(search=query.q, after=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda user: user.id)
    locks = users.get_lockouts(page)
    items = [schemas.User.of(user, locks.get(user.id)) for user in page]
    return schemas.UserList(items=items, next=cursor)


def _user(user: User) -> schemas.User:
    """Return the API's view of ``user``, its lockout read from the brute-force counters."""
    return schemas.User.of(user, users.get_lockouts([user]).get(user.id))


@route(
    "POST",
    "/users",
    "Create a user",
    status=201,
    body=schemas.UserCreate,
    response=schemas.User,
    errors=(409,),
    tag="users",
)
def create_user(body: schemas.UserCreate) -> schemas.User:
    user = users.add_user(
        body.email,
        name=body.name,
        password=body.password,
        is_admin=body.admin,
        given_name=body.given_name,
        family_name=body.family_name,
    )
    # An address that was tried before it existed may already be locked: say so.
    return _user(user)


@route("GET", "/users/{id}", "Get a user", response=schemas.User, **USER)
def get_user(id: int) -> schemas.User:
    return _user(users.require_user(id))


@route(
    "PATCH",
    "/users/{id}",
    "Update a user; disabled: true ends their sessions everywhere",
    body=schemas.UserUpdate,
    response=schemas.User,
    errors=(409,),
    **USER,
)
def update_user(id: int, body: schemas.UserUpdate) -> schemas.User:
    user = users.require_user(id)
    users.update_user(
        user,
        email=body.email,
        name=body.name,
        given_name=body.given_name,
        family_name=body.family_name,
        is_admin=body.admin,
    )
    if body.disabled is not None:
        users.set_disabled(user, body.disabled)
    return _user(user)


@route(
    "DELETE",
    "/users/{id}",
    "Delete a user",
    status=204,
    description=(
        "Every session of the user ends first, at every app that joined it (as a revocation "
        "does). Their tokens, authorization codes, consents, group memberships and SAML "
        "persistent NameIDs are deleted; audit events stay, naming the user by id."
    ),
    **USER,
)
def delete_user(id: int) -> None:
    users.delete_user(users.require_user(id))


@route(
    "POST",
    "/users/{id}/password",
    "Set a new password; every session of the user ends everywhere",
    status=204,
    body=schemas.PasswordReset,
    **USER,
)
def reset_password(id: int, body: schemas.PasswordReset) -> None:
    users.set_password(users.require_user(id), body.password)


@route(
    "POST",
    "/users/{id}/unlock",
    "Lift a brute-force lockout of the account",
    status=204,
    description=(
        "After too many failed logins an account is locked for a while (IDP_LOGIN_LOCKOUT); "
        "this ends the lock now and forgets the failures. Audited as `account_unlocked`."
    ),
    **USER,
)
def unlock_user(id: int) -> None:
    users.unlock_user(users.require_user(id))


@route(
    "DELETE",
    "/users/{id}/factors",
    "Remove every second factor of the user",
    status=204,
    description=(
        "Their TOTP authenticator and recovery codes (and any passkeys) go: their next login "
        "asks for the password only, or sends them to set up a factor when the MFA policy "
        "requires one. Their sessions stay. Audited as `mfa_reset`."
    ),
    **USER,
)
def reset_factors(id: int) -> None:
    mfa.reset_factors(users.require_user(id))


# -- clients ---------------------------------------------------------------------------------

CLIENT: dict[str, Any] = {"path_params": {"client_id": str}, "tag": "clients"}


@route(
    "GET",
    "/clients",
    "List OIDC clients",
    query=schemas.Query,
    response=schemas.ClientList,
    tag="clients",
)
def list_clients(query: schemas.Query) -> schemas.ClientList:
    rows = clients.list_clients(after=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda client: client.id)
    return schemas.ClientList(items=[schemas.Client.of(client) for client in page], next=cursor)


@route(
    "POST",
    "/clients",
    "Register an OIDC client (or a service account)",
    status=201,
    body=schemas.ClientCreate,
    response=schemas.ClientCreated,
    errors=(409,),
    tag="clients",
)
def create_client(body: schemas.ClientCreate) -> schemas.ClientCreated:
    scope = body.scope if body.scope is not None else clients.DEFAULT_SCOPE.split()
    client, secret = clients.register_client(
        clients.ClientSpec(
            client_name=body.client_name,
            redirect_uris=body.redirect_uris,
            token_endpoint_auth_method=body.token_endpoint_auth_method,
            is_trusted=body.trusted,
            is_resource_server=body.resource_server,
            is_service_account=body.service_account,
            scope=" ".join(scope),
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            backchannel_logout_uri=body.backchannel_logout_uri,
            frontchannel_logout_uri=body.frontchannel_logout_uri,
            jwks_uri=body.jwks_uri,
            id_token_signed_response_alg=body.id_token_signed_response_alg,
            subject_type=body.subject_type,
            client_id=body.client_id,
        )
    )
    return schemas.ClientCreated(**schemas.Client.fields_of(client), client_secret=secret)


@route("GET", "/clients/{client_id}", "Get an OIDC client", response=schemas.Client, **CLIENT)
def get_client(client_id: str) -> schemas.Client:
    return schemas.Client.of(clients.require_client(client_id))


@route(
    "PATCH",
    "/clients/{client_id}",
    "Update an OIDC client; disabled: true also revokes its tokens",
    body=schemas.ClientUpdate,
    response=schemas.Client,
    **CLIENT,
)
def update_client(client_id: str, body: schemas.ClientUpdate) -> schemas.Client:
    client = clients.require_client(client_id)
    change = clients.ClientUpdate(
        **body.model_dump(exclude={"trusted", "disabled"}),
        is_trusted=body.trusted,
        is_disabled=body.disabled,
        unset={name for name in body.model_fields_set if getattr(body, name) is None},
    )
    return schemas.Client.of(clients.update_client(client, change))


@route(
    "POST",
    "/clients/{client_id}/secret",
    "Rotate the client secret (the old one stops working)",
    response=schemas.ClientSecret,
    errors=(409,),
    **CLIENT,
)
def rotate_secret(client_id: str) -> schemas.ClientSecret:
    secret = clients.rotate_client_secret(clients.require_client(client_id))
    return schemas.ClientSecret(client_id=client_id, client_secret=secret)


@route(
    "DELETE",
    "/clients/{client_id}",
    "Delete an OIDC client",
    status=204,
    description="Its tokens end at once (introspection: inactive; refresh: refused).",
    **CLIENT,
)
def delete_client(client_id: str) -> None:
    clients.delete_client(clients.require_client(client_id))


# -- SAML service providers --------------------------------------------------------------------

SP: dict[str, Any] = {"path_params": {"id": int}, "tag": "service-providers"}


@route(
    "GET",
    "/service-providers",
    "List SAML service providers",
    query=schemas.Query,
    response=schemas.ServiceProviderList,
    tag="service-providers",
)
def list_service_providers(query: schemas.Query) -> schemas.ServiceProviderList:
    rows = sps.list_service_providers(after=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda sp: sp.id)
    return schemas.ServiceProviderList(
        items=[schemas.ServiceProvider.of(sp) for sp in page], next=cursor
    )


@route(
    "POST",
    "/service-providers",
    "Register a SAML SP from its metadata XML (the request body)",
    status=201,
    xml_body=True,
    response=schemas.ServiceProvider,
    errors=(409,),
    tag="service-providers",
)
def import_service_provider(body: bytes) -> schemas.ServiceProvider:
    entity_id = sps.register_sp_metadata(body)
    return schemas.ServiceProvider.of(sps.require_service_provider_by_entity_id(entity_id))


@route(
    "GET",
    "/service-providers/{id}",
    "Get a SAML service provider",
    response=schemas.ServiceProvider,
    **SP,
)
def get_service_provider(id: int) -> schemas.ServiceProvider:
    return schemas.ServiceProvider.of(sps.require_service_provider(id))


@route(
    "PATCH",
    "/service-providers/{id}",
    "Change the released attributes and the NameID format",
    body=schemas.ServiceProviderUpdate,
    response=schemas.ServiceProvider,
    **SP,
)
def update_service_provider(
    id: int, body: schemas.ServiceProviderUpdate
) -> schemas.ServiceProvider:
    sp = sps.update_sp_settings(
        sps.require_service_provider(id),
        attributes=body.attributes,
        release_all="attributes" in body.model_fields_set and body.attributes is None,
        name_id_format=body.name_id_format,
    )
    return schemas.ServiceProvider.of(sp)


@route("DELETE", "/service-providers/{id}", "Delete a SAML service provider", status=204, **SP)
def delete_service_provider(id: int) -> None:
    sps.delete_service_provider(sps.require_service_provider(id))


# -- sessions --------------------------------------------------------------------------------


@route(
    "GET",
    "/sessions",
    "List live login sessions, newest first",
    query=schemas.SessionQuery,
    response=schemas.SessionList,
    errors=(404,),
    tag="sessions",
)
def list_sessions(query: schemas.SessionQuery) -> schemas.SessionList:
    user = users.require_user_by_email(query.user) if query.user else None
    rows = sessions.page_logins(user, before=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda login: login.id)
    items = [schemas.Session.model_validate(sessions.describe_login(login)) for login in page]
    return schemas.SessionList(items=items, next=cursor)


REVOCATION = (
    "The session ends at the IdP at once: its refresh tokens are revoked, its access tokens "
    "introspect inactive, and every app that joined it is told (OIDC back-channel logout, "
    "SAML logout where the SP can be reached)."
)


@route(
    "DELETE",
    "/sessions/{sid}",
    "End one session everywhere",
    status=204,
    description=REVOCATION + " Ending a session that already ended changes nothing.",
    path_params={"sid": str},
    tag="sessions",
)
def revoke_session(sid: str) -> None:
    login = sessions.get_login_by_sid(sid) if len(sid) <= 64 and is_clean(sid) else None
    if login is None:
        raise NotFoundError("no session with this id")
    sessions.revoke_login(login, reason="admin_revoked")


@route(
    "DELETE",
    "/sessions",
    "End every session of a user everywhere",
    query=schemas.UserSessionsQuery,
    response=schemas.SessionsEnded,
    description=REVOCATION,
    errors=(404,),
    tag="sessions",
)
def revoke_user_sessions(query: schemas.UserSessionsQuery) -> schemas.SessionsEnded:
    user = users.require_user_by_email(query.user)
    ended = sessions.revoke_user_sessions(user, reason="admin_revoked")
    return schemas.SessionsEnded(ended=len(ended))


# -- personal access tokens --------------------------------------------------------------------


@route(
    "GET",
    "/tokens",
    "List personal access tokens (revoked and expired included; never a secret)",
    query=schemas.TokenQuery,
    response=schemas.TokenList,
    errors=(404,),
    tag="tokens",
)
def list_tokens(query: schemas.TokenQuery) -> schemas.TokenList:
    user = users.require_user_by_email(query.user) if query.user else None
    rows = pats.list_tokens(user, after=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda row: row.id)
    items = [schemas.Token.model_validate(pats.describe_token(row)) for row in page]
    return schemas.TokenList(items=items, next=cursor)


@route(
    "DELETE",
    "/tokens/{id}",
    "Revoke a personal access token",
    status=204,
    description="It stops working at once; revoking it again changes nothing.",
    path_params={"id": int},
    tag="tokens",
)
def revoke_token(id: int) -> None:
    pats.revoke_token(pats.require_token(id), reason="admin_revoked")


@route(
    "GET",
    "/tokens/{id}/usage",
    "The token's recent usage: one item per IP network, hour and resource, newest first",
    response=schemas.TokenUsageList,
    path_params={"id": int},
    tag="tokens",
)
def token_usage(id: int) -> schemas.TokenUsageList:
    rows = usage.recent_usage(usage.PAT, pats.require_token(id).id)
    items = [schemas.TokenUsage.model_validate(row, from_attributes=True) for row in rows]
    return schemas.TokenUsageList(items=items)


# -- keys ------------------------------------------------------------------------------------


@route("GET", "/keys", "List the signing keys", response=schemas.KeyList, tag="keys")
def list_keys() -> schemas.KeyList:
    return schemas.KeyList(items=[schemas.Key.of(info) for info in keys.list_keys()], next=None)


@route(
    "POST",
    "/keys/rotate",
    "Add a new key of each kind (published now, signing after the JWKS max age)",
    body=schemas.KeyRotate,
    body_optional=True,
    response=schemas.KeyList,
    tag="keys",
)
def rotate_keys(body: schemas.KeyRotate) -> schemas.KeyList:
    created = keys.rotate_keys(immediate=body.immediate)
    return schemas.KeyList(items=[schemas.Key.of(info) for info in created], next=None)


# -- audit events ----------------------------------------------------------------------------

EXPORT_BATCH = 500


def _audit_filters(query: schemas.AuditQuery) -> dict[str, Any] | None:
    """Return the service's filters, or None when the named user cannot have events."""
    user_id = None
    if query.user is not None:
        if query.user.isdigit() and len(query.user) < 10:
            user_id = int(query.user)
        else:
            user = users.get_user_by_email(query.user)
            if user is None:
                return None
            user_id = user.id
    return {"user_id": user_id, "event": query.type, "since": query.since, "until": query.until}


def _export(filters: dict[str, Any] | None) -> Iterator[str]:
    before = None
    while filters is not None:
        rows = audit.list_events(**filters, before=before, limit=EXPORT_BATCH)
        for row in rows:
            yield schemas.AuditEvent.of(row).model_dump_json() + "\n"
        if len(rows) < EXPORT_BATCH:
            return
        before = rows[-1].id


@route(
    "GET",
    "/audit-events",
    "List audit events, newest first (JSON Lines export with Accept or format=jsonl)",
    query=schemas.AuditQuery,
    response=schemas.AuditEventList,
    ndjson_item=schemas.AuditEvent,
    tag="audit-events",
)
def list_audit_events(query: schemas.AuditQuery) -> schemas.AuditEventList | Response:
    filters = _audit_filters(query)
    best = request.accept_mimetypes.best_match(["application/json", NDJSON])
    if query.format == "jsonl" or (query.format is None and best == NDJSON):
        # Every matching event, streamed in batches: the export needs no paging.
        return Response(
            stream_with_context(_export(filters)),
            mimetype=NDJSON,
            headers={"Cache-Control": "no-store"},
        )
    if filters is None:
        return schemas.AuditEventList(items=[], next=None)
    rows = audit.list_events(**filters, before=_after(query), limit=query.limit + 1)
    page, cursor = _page(rows, query.limit, lambda row: row.id)
    return schemas.AuditEventList(items=[schemas.AuditEvent.of(row) for row in page], next=cursor)
