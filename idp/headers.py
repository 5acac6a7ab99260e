"""Security headers on every response; a strict Content-Security-Policy on HTML pages.

No page runs inline script (static/continue.js does the auto-submits), so ``script-src 'self'``
holds. ``form-action`` is left out: form_post and SAML HTTP-POST pages submit to the apps.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask
from flask import Response
from flask import g

from idp.settings import get_settings

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'"
)
# Not a page (JSON, XML, files): nothing in it may load or run, nor be framed.
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000"


def allow_frames(urls: Iterable[str]) -> str:
    """Let this page frame ``urls`` (front-channel logout); a Jinja global that renders ""."""
    origins: set[str] = g.setdefault("idp_frame_origins", set())
    for url in urls:
        parts = urlsplit(url)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return ""


def allow_framing_by_self() -> None:
    """Let the IdP's own pages frame this one (a front-channel logout page it loads)."""
    g.idp_frameable = True


def no_store(response: Response) -> Response:
    """Keep a private page (devices, addresses, buttons that end sessions) out of every cache.

    Register it as a blueprint's ``after_request``; framing is already refused for every page.
    """
    response.headers["Cache-Control"] = "no-store"
    return response


def _add_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if get_settings().is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype != "text/html":
        response.headers.setdefault("Content-Security-Policy", OTHER_POLICY)
        return response
    frameable = g.get("idp_frameable", False)
    ancestors = "'self'" if frameable else "'none'"
    policy = f"{PAGE_POLICY}; frame-ancestors {ancestors}"
    origins = g.get("idp_frame_origins")
    if origins:
        policy += "; frame-src " + " ".join(["'self'", *sorted(origins)])
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if frameable else "DENY"
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["allow_frames"] = allow_frames
    app.after_request(_add_headers)
