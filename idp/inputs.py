"""Refuse request parameters no protocol can carry: control characters and bytes not UTF-8.

One check before any view runs, so no view has to think about it and no NUL reaches a query
(PostgreSQL refuses NUL in text: a 500 instead of the protocol's error).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from flask import Flask
from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import RequestEntityTooLarge

# C0 controls except TAB, LF and CR (SPs wrap base64 SAML messages; JSON may be indented),
# and DEL.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class MalformedInputError(BadRequest):
    """A parameter carries control characters or bytes that are not UTF-8."""

    def __init__(self) -> None:
        # An instance's description: error pages keep it instead of their generic text.
        super().__init__("A parameter contains control characters or bytes that are not UTF-8.")


def is_clean(value: str) -> bool:
    """Return whether ``value`` is free of control characters and undecodable bytes."""
    return _FORBIDDEN.search(value) is None


def validate_parameters() -> None:
    """Refuse a request whose query or form has a malformed parameter name or value.

    Raises:
        MalformedInputError: a 400 that each blueprint renders in its protocol's shape.

    """
    try:
        encoded = [request.query_string]
        if request.mimetype == "application/x-www-form-urlencoded":
            encoded.append(request.get_data())
        parameters = request.values
    except RequestEntityTooLarge:
        return  # the view answers that in its own shape
    # Werkzeug keeps bytes that are not UTF-8 as literal "%FF" text: look at the octets.
    if not all(map(_is_utf8, encoded)):
        raise MalformedInputError()
    for name, values in parameters.lists():
        if not is_clean(name) or not all(map(is_clean, values)):
            raise MalformedInputError()


def _is_utf8(encoded: bytes) -> bool:
    try:
        unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def init_app(app: Flask) -> None:
    app.before_request(validate_parameters)
