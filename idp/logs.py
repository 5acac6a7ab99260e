"""Logging: ``idp serve`` sends every line, audit included, to stderr; no secret at any level."""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

from flask import Flask

from idp.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# gunicorn's access log without the query string and Referer: an id_token_hint, a SAMLRequest
# or an RP's callback URL with its code would be written to disk otherwise.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'

# The names of secrets, not one.
_SECRET_NAMES = "|".join(  # noqa: S105
    [
        *("access_token", "refresh_token", "id_token", "id_token_hint", "logout_token", "token"),
        *("code", "code_verifier", "client_secret", "client_assertion", "assertion"),
        *("password", "otp", "secret", "SAMLResponse", "SAMLRequest"),
    ]
)
_SECRETS = [
    # A JWS or JWE in compact form, wherever it appears.
    (re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w.-]*"), "[redacted]"),
    # name=value, 'name': 'value', "name": "value" (query strings, forms, dict reprs, JSON).
    (
        re.compile(rf"""(?i)(\b(?:{_SECRET_NAMES})['"]?\s*[=:]\s*['"]?)[^'"&\s,;}}]+"""),
        r"\1[redacted]",
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


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to the current ``sys.stderr`` (as logging's last resort does), redacted."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(RedactingFormatter(FORMAT))

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def configure_logging(settings: Settings) -> None:
    """Log to stderr at ``log_level``: the ``idp.audit`` lines (INFO) are on by default."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    root.addHandler(StderrHandler())
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
