"""OAuth errors Authlib lacks, and the one rule for an error at a browser-facing endpoint.

Each error carries its status, body and headers (Authlib's ``error()``); the authorization
server's ``handle_error_response`` turns any of them into the response.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import errors as rfc6750
from flask import Response
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue

from idp.oidc.server import get_authorization_server

Headers = list[tuple[str, str]]


def _bearer_challenge(error: OAuth2Error) -> tuple[str, str]:
    # RFC 6750 §3: the error goes in WWW-Authenticate too.
    challenge = f'Bearer error="{error.error}", error_description="{error.description}"'
    return ("WWW-Authenticate", challenge)


class MethodNotAllowedError(InvalidRequestError):  # type: ignore[misc]
    """RFC 6749 §3.2: "The client MUST use the HTTP "POST" method" at the token endpoint."""

    description = "The token endpoint accepts POST only."
    status_code = 405

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        return [*headers, ("Allow", "POST")]


class MissingTokenError(OAuth2Error):  # type: ignore[misc]
    """RFC 6750 §3.1: a request with no token gets a bare challenge, without an error code."""

    error = "invalid_request"
    status_code = 401

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        return [*headers, ("WWW-Authenticate", "Bearer")]


class BearerRequestError(InvalidRequestError):  # type: ignore[misc]
    """RFC 6750 §3.1 ``invalid_request`` at a protected resource, with its challenge."""

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        return [*headers, _bearer_challenge(self)]


class InsufficientScopeError(rfc6750.InsufficientScopeError):  # type: ignore[misc]
    """RFC 6750 §3.1 ``insufficient_scope`` (403), with the challenge Authlib leaves out."""

    # Authlib's class adds no WWW-Authenticate (unlike its InvalidTokenError):
    # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6750/errors.py#L74-L88

    def get_headers(self) -> Headers:
        headers: Headers = super().get_headers()
        return [*headers, _bearer_challenge(self)]


def render_oauth_error(error: OAuth2Error) -> ResponseReturnValue:
    """Show ``error`` here when no redirect_uri was validated; else the server sends it there.

    RFC 6749 §4.1.2.1: without a valid client and redirect_uri, the server "MUST NOT
    automatically redirect the user-agent to the invalid redirection URI".
    """
    if error.redirect_uri:
        response: Response = get_authorization_server().handle_error_response(request, error)
        return response
    page = render_template(
        "errors/oauth.html", error=error.error, description=error.description or ""
    )
    return page, 400


class UnmetAuthenticationRequirementsError(OAuth2Error):  # type: ignore[misc]
    """The login cannot meet the requested ``acr``.

    OpenID Connect Core Error Code unmet_authentication_requirements 1.0, §2:
    "The Authorization Server is unable to meet the requirements of the Relying Party for the
    authentication of the End-User."
    https://openid.net/specs/openid-connect-unmet-authentication-requirements-1_0.html
    """

    error = "unmet_authentication_requirements"
    description = "The user has no second factor to meet the requested authentication."
