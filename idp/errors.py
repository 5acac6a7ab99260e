"""Error tree of the IdP and the handlers that render errors without leaking internals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from collections.abc import Sequence

from flask import Flask
from flask import Response
from flask import current_app
from flask import render_template
from flask import request
from flask.sansio.app import App
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)


class IdpError(Exception):
    """Base of every error the IdP raises on purpose; its message is safe to show."""


class ConfigurationError(IdpError):
    """A setting is missing or wrong; raised at start-up with a one-line message."""


class NotFoundError(IdpError):
    """The named object does not exist."""


class ConflictError(IdpError):
    """The object already exists or the change contradicts the stored state."""


class InvalidInputError(IdpError):
    """A value given by the caller is malformed."""


class SamlError(IdpError):
    """Base of SAML errors."""


class SamlRequestError(SamlError):
    """The SAML request cannot be answered to its sender: HTML 400 at the IdP."""


class SamlStatusError(SamlError):
    """The SAML request is answered with a non-success status to a validated ACS."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiError(IdpError):
    """An admin API error rendered as JSON ``{"error": code, "message": ...}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# RFC 9457 problem details: the admin API's error shape.
PROBLEM_MEDIA_TYPE = "application/problem+json"
ADMIN_API_PREFIX = "/api/admin/"


def build_problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: Sequence[dict[str, str]] = (),
    headers: Sequence[tuple[str, str]] = (),
) -> Response:
    """Build an RFC 9457 ``application/problem+json`` response."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": title or HTTP_STATUS_TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = list(errors)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for key, value in headers:
        response.headers[key] = value
    return response


def _is_admin_api() -> bool:
    return request.path.startswith(ADMIN_API_PREFIX)


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.path.startswith("/api/") or _is_protocol_endpoint() or best == "application/json"


# The IdP's words for the statuses a browser commonly meets, in place of werkzeug's stock
# texts; a description given on purpose (``abort(400, description=...)``) is kept.
HTTP_PAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request was not understood."),
    404: ("Page not found", "There is no page at this address. Check the link or start over."),
    405: ("Not allowed", "This page cannot be used that way."),
    413: ("Request too large", "The request was too large to handle."),
    429: ("Too many requests", "Too many attempts; wait a moment and try again."),
    500: ("Something went wrong", "Something went wrong on our side. Try again in a moment."),
    503: ("Temporarily unavailable", "The service is temporarily unavailable. Try again soon."),
}


# The title of each status the admin API answers with (RFC 9110 reason phrases).
HTTP_STATUS_TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# A dependency (the database, Redis) is down: the client may retry after this many seconds.
RETRY_AFTER_SECONDS = 5


def _render(
    status: int, name: str, message: str, headers: Sequence[tuple[str, str]] = ()
) -> ResponseReturnValue:
    if _is_admin_api():
        return build_problem(status, message, headers=headers)
    if _wants_json():
        return {"error": name.lower().replace(" ", "_"), "message": message}, status, [*headers]
    title = HTTP_PAGES.get(status, (name, ""))[0]
    # An error page must render whatever broke: it asks nothing of the database or the login.
    page = render_template(
        "errors/error.html", status=status, title=title, message=message, error_page=True
    )
    return page, status, [*headers]


def render_http_error(error: HTTPException) -> ResponseReturnValue:
    """Render an HTTP error (400, 404, 405, ...) as an IdP page, or JSON for API callers."""
    status = error.code or 500
    message = error.description or ""
    if not message or message == type(error).description:
        message = HTTP_PAGES.get(status, ("", "The request could not be handled."))[1]
    # Keep what the status needs (Allow on a 405, Retry-After on a 429), not werkzeug's body type.
    headers = [(key, value) for key, value in error.get_headers() if key.lower() != "content-type"]
    return _render(status, error.name, message, headers)


def render_server_error() -> ResponseReturnValue:
    """Render the generic 500 page (or JSON); the cause stays in the server's log."""
    return _render(500, "Internal Server Error", HTTP_PAGES[500][1])


def render_unavailable() -> ResponseReturnValue:
    """Render a 503: a store the request needs is down; nothing was changed; retry later.

    Protocol endpoints answer RFC 6749's ``temporarily_unavailable`` in their JSON shape,
    the admin API a problem+json, a browser a page.
    """
    headers = [("Retry-After", str(RETRY_AFTER_SECONDS)), ("Cache-Control", "no-store")]
    message = HTTP_PAGES[503][1]
    if _is_protocol_endpoint():
        body = {"error": "temporarily_unavailable", "error_description": message}
        return body, 503, headers
    if _wants_json() and not _is_admin_api():
        return {"error": "temporarily_unavailable", "message": message}, 503, headers
    return _render(503, "Service Unavailable", message, headers)


def mark_protocol_endpoints(app: App, endpoints: Iterable[str]) -> None:
    """Have an unexpected failure at ``endpoints`` answer ``{"error": "server_error"}``.

    Their callers are programs that parse JSON (RFC 6749 §5.2 shape), never a person.
    """
    app.extensions.setdefault("idp.protocol_endpoints", set()).update(endpoints)


def _is_protocol_endpoint() -> bool:
    return request.endpoint in current_app.extensions.get("idp.protocol_endpoints", ())


def register_error_handlers(app: Flask) -> None:
    """Render HTTP errors as small pages (or JSON) and hide unexpected exceptions."""
    app.errorhandler(HTTPException)(render_http_error)

    @app.errorhandler(ApiError)
    def handle_api(error: ApiError) -> ResponseReturnValue:
        return {"error": error.code, "message": str(error)}, error.status

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> ResponseReturnValue:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        if _is_protocol_endpoint():
            return {"error": "server_error"}, 500, {"Cache-Control": "no-store"}
        return render_server_error()
