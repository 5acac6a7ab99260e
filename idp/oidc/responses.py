"""Authorization responses to the client's redirect_uri, success or error (RFC 6749 §4.1.2).

By query or by OAuth 2.0 Form Post Response Mode, with ``iss`` always (RFC 9207 §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from markupsafe import escape

ResponseTuple = tuple[int, str, list[tuple[str, str]]]


def build_authorization_response(
    redirect_uri: str,
    params: Sequence[tuple[str, str]],
    *,
    issuer: str,
    response_mode: str,
    script_url: str,
) -> ResponseTuple:
    """Return ``(status, body, headers)`` that carry ``params`` and ``iss`` to the client."""
    # RFC 9207 §2: "including error responses, an authorization server supporting this
    # specification MUST indicate its identity by including the iss parameter".
    params = [*params, ("iss", issuer)]
    if response_mode == "form_post":
        return build_form_post(redirect_uri, params, script_url=script_url)
    # RFC 6749 §3.1.2: the redirect_uri's own query is kept as registered.
    separator = "&" if "?" in redirect_uri else "?"
    return 302, "", [("Location", redirect_uri + separator + urlencode(params))]


def build_form_post(
    redirect_uri: str, params: Sequence[tuple[str, str]], *, script_url: str
) -> ResponseTuple:
    """Build a page that POSTs ``params`` to ``redirect_uri`` (OAuth 2.0 Form Post Response Mode).

    Values are HTML-escaped, never percent-encoded, so the client receives them unchanged;
    the script at ``script_url`` submits the form (no inline script: the page's CSP forbids
    it); without JavaScript the user presses the button.
    """
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><title>Continue</title>'
        f'<script src="{escape(script_url)}" defer></script></head><body>'
        f'<form method="post" action="{escape(redirect_uri)}" data-autosubmit>{fields}'
        "<noscript><p>JavaScript is off: press Continue to return to the application.</p>"
        '<button type="submit">Continue</button></noscript></form></body></html>'
    )
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Pragma", "no-cache"),
    ]
    return 200, body, headers
