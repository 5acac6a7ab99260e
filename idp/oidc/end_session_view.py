"""RP-Initiated Logout 1.0's end_session endpoint: confirm, end the session, send the browser on."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from flask import Response
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue

from idp import csrf
from idp import db
from idp.models.login import LoginSession
from idp.oidc.errors import render_oauth_error
from idp.oidc.server import get_authorization_server
from idp.sessions import service as sessions

# The confirmation form's own fields are not carried over to the GET that looks for the cookie.
_NOT_HOPPED = frozenset({csrf.FIELD, "confirm"})


def _end_hinted_login(claims: dict[str, Any], current: LoginSession | None) -> LoginSession | None:
    """End the live session the hint's ``sid`` names, with or without this browser's cookie."""
    hinted = sessions.get_login_by_sid(claims["sid"]) if claims else None
    if hinted is None or not sessions.is_login_active(hinted, db.now()):
        return None
    if current is not None and current.id == hinted.id:
        sessions.end_current_login("rp_logout")
    else:
        sessions.revoke_login(hinted, "rp_logout")
    return hinted


def end_session() -> ResponseReturnValue:
    """RP-Initiated Logout 1.0: confirm unless a valid id_token_hint proves the RP asked."""
    from idp.sessions import logout as session_logout

    server = get_authorization_server()
    try:
        end_request = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return render_oauth_error(error)  # never redirects: no validated redirect here
    login = sessions.current_login()
    # A valid hint proves the RP asked: the session it names ends, cookie or not (a
    # cross-site POST carries no SameSite=Lax cookie). Only the RP proven by its hint is left
    # out of the iframes: it logged itself out; a client_id alone is no proof.
    ended = _end_hinted_login(end_request.id_token_claims or {}, login)
    urls: list[str] = []
    if ended is not None:
        initiator = end_request.client.client_id if end_request.client else None
        urls = session_logout.front_channel_urls(ended, initiator=initiator)
        login = None if login is not None and login.id == ended.id else login
    elif login is None and request.method == "POST":
        # Look again with a same-site GET, which carries the cookie, before concluding that
        # this browser has no session (and saying it is signed out).
        hop = [item for item in request.values.items(multi=True) if item[0] not in _NOT_HOPPED]
        return Response(status=303, headers={"Location": f"{request.path}?{urlencode(hop)}"})
    if login is not None:
        if request.method == "GET" or "confirm" not in request.form:
            params = [item for item in request.values.items(multi=True) if item[0] != csrf.FIELD]
            return render_template(
                "oidc/confirm_logout.html",
                login=login,
                client=end_request.client,
                params=params,
                frontchannel_urls=urls,
            )
        csrf.validate()
        sessions.end_current_login("rp_logout")
        urls += session_logout.front_channel_urls(login)
    if not urls and end_request.redirect_uri:
        # Nothing needs the browser: a plain redirect, as oidc-provider and Keycloak answer.
        return Response(status=303, headers={"Location": end_request.redirect_uri})
    return render_template(
        "sessions/logged_out.html", frontchannel_urls=urls, redirect_to=end_request.redirect_uri
    )
