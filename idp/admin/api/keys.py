"""The admin API's signing keys and audit events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response
from flask import request
from flask import stream_with_context

from idp import audit
from idp.admin import schemas
from idp.admin.api.routing import page_of
from idp.admin.api.routing import route
from idp.admin.openapi import NDJSON
from idp.keys import service as keys
from idp.users import service as users


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
    page, cursor = page_of(
        query, lambda after, limit: audit.list_events(**filters, before=after, limit=limit)
    )
    return schemas.AuditEventList(items=[schemas.AuditEvent.of(row) for row in page], next=cursor)
