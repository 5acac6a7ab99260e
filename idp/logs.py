"""Logging: ``idp serve`` sends every line, audit included, to stderr; no secret at any level.

Each request gets an ID (``X-Request-ID``, echoed back) and one ``idp.access`` line: method,
path (never the query string), endpoint, status, duration, client IP. Lines are JSON objects
(``log_format = "json"``, the default) or text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import TextIO

from flask import Flask
from flask import Response
from flask import g
from flask import has_request_context
from flask import request

from idp.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's or client's ID is kept when it is short and plain (a UUID, nginx's $request_id):
# anything else could forge log lines or carry a payload, so a fresh ID replaces it.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
access_logger = logging.getLogger("idp.access")

# The names of secrets, not one.
_SECRET_NAMES = "|".join(  # noqa: S105
    [
        *("access_token", "refresh_token", "id_token", "id_token_hint", "logout_token", "token"),
        *("code", "code_verifier", "client_secret", "client_assertion", "assertion"),
        *("password", "otp", "secret", "SAMLResponse", "SAMLRequest"),
    ]
)


def _blank_value(match: re.Match[str]) -> str:
    quote = match.group(2)[0] if match.group(2)[0] in "'\"" else ""
    return f"{match.group(1)}{quote}[redacted]{quote}"


_SECRETS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # A JWS or JWE in compact form, wherever it appears.
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w.-]*"), "[redacted]"),
    # name=value, 'name': 'value', "name": "value" (query strings, forms, dict reprs, JSON);
    # a quoted value is blanked to its closing quote, spaces included.
    (
        re.compile(
            rf"""(?i)(\b(?:{_SECRET_NAMES})['"]?\s*[=:]\s*)("[^"]*"?|'[^']*'?|[^'"&\s,;}}]+)"""
        ),
        _blank_value,
    ),
    (re.compile(r"(?i)\b(Basic|Bearer)\s+[\w.~+/=-]+"), r"\1 [redacted]"),
]


def redact_text(text: str) -> str:
    """Return ``text`` with every token, code, secret, password and SAML message blanked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Blank the secrets of a record's message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output, tracebacks included, is passed through redact_text."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _redact_values(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(key): _redact_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_values(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record; every string in it passed through redact_text.

    Fields: ``time`` (UTC), ``level``, ``logger``, ``message``, ``request_id`` within a
    request, and the structured fields a record carries (``http`` for the access line,
    ``audit`` for a security event) merged in.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = get_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for name in ("http", "audit"):
            fields = getattr(record, name, None)
            if isinstance(fields, Mapping):
                entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # Redacted before encoding: a pattern run over the encoded line could stop at an
        # escaped quote, leak the rest of a value and break the JSON.
        return json.dumps(_redact_values(entry), ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to the current ``sys.stderr`` (as logging's last resort does), redacted."""

    def __init__(self, log_format: str = "text") -> None:
        logging.Handler.__init__(self)
        self.setFormatter(JsonFormatter() if log_format == "json" else RedactingFormatter(FORMAT))

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def configure_logging(settings: Settings) -> None:
    """Log to stderr in ``log_format`` at ``log_level``: audit and access lines are INFO."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    root.addHandler(StderrHandler(settings.log_format))
    level = logging.getLevelName(settings.log_level)
    root.setLevel(level)
    # Every SQL statement at INFO would drown the rest (their parameters are hidden anyway).
    logging.getLogger("sqlalchemy").setLevel(max(level, logging.WARNING))
    # Authlib logs each token response whole at DEBUG ("Issue token %r to %r"): see init_app.
    logging.getLogger("authlib").setLevel(max(level, logging.INFO))


def init_app(app: Flask) -> None:
    """Filter Authlib's loggers, whatever level someone gives them (call after its imports)."""
    # Authlib writes whole tokens at DEBUG, e.g. "Issue token %r to %r" with the access,
    # refresh and ID tokens: https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/grants/authorization_code.py#L279
    # (and refresh_token.py, client_credentials.py). A filter on each of its module loggers
    # applies to the records they create, whichever handler receives them.
    for name in list(logging.root.manager.loggerDict):
        if name == "authlib" or name.startswith("authlib."):
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactSecrets) for f in logger.filters):
                logger.addFilter(RedactSecrets())


def get_request_id() -> str | None:
    """Return the ID of the current request, or None outside one."""
    if not has_request_context():
        return None
    request_id: str | None = g.get("idp_request_id")
    return request_id


def get_request_duration() -> float:
    """Return the seconds since the current request started."""
    now = time.perf_counter()
    started: float = g.get("idp_request_started", now)
    return now - started


def _start_request() -> None:
    g.idp_request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.idp_request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _finish_request(response: Response) -> Response:
    request_id = g.get("idp_request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    duration = get_request_duration()
    fields = {
        "method": request.method,
        "path": request.path,
        "endpoint": request.endpoint,
        "status": response.status_code,
        "duration_ms": round(duration * 1000, 2),
        "ip": request.remote_addr,
    }
    access_logger.info(
        "%s %s %s %.1fms endpoint=%s ip=%s request_id=%s",
        request.method,
        request.path,
        response.status_code,
        duration * 1000,
        request.endpoint,
        request.remote_addr,
        request_id,
        extra={"http": fields},
    )
    return response


def init_request_log(app: Flask) -> None:
    """Give every request an ID and an access line (call first: hooks run in order)."""
    app.before_request(_start_request)
    # after_request hooks run in reverse order: registered first, this one sees the final
    # response, whatever the others added.
    app.after_request(_finish_request)
