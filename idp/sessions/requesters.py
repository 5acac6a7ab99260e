"""Which app is asking for the login: the login page names the client or SP behind ``next``.

sessions/ knows no protocol: each protocol registers, for the endpoint its ``next`` URLs point
to, a function that reads that request's parameters and returns the registered app's name.
The name comes from the registration, never from a parameter, so a link cannot choose it.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from flask import Flask
from flask import current_app
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

NameOf = Callable[[MultiDict[str, str]], str | None]

_KEY = "idp.sessions.requesters"


def register(app: Flask, endpoint: str, name_of: NameOf) -> None:
    """Let the login page name the app behind a ``next`` URL that routes to ``endpoint``."""
    app.extensions.setdefault(_KEY, {})[endpoint] = name_of


def get_requester_name(next_url: str | None) -> str | None:
    """Return the display name of the app whose request ``next_url`` resumes, or None."""
    if not next_url:
        return None
    target = urlsplit(next_url)
    try:
        endpoint, _ = current_app.url_map.bind("").match(target.path, method="GET")
    except HTTPException:  # no route, or a redirect (RequestRedirect) to one
        return None
    name_of: NameOf | None = current_app.extensions.get(_KEY, {}).get(endpoint)
    if name_of is None:
        return None
    return name_of(MultiDict(parse_qsl(target.query)))
