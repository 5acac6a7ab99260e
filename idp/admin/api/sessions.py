"""The admin API's login sessions and personal access tokens: list, revoke, usage."""

from __future__ import annotations

from idp.admin import schemas
from idp.admin.api.routing import page_of
from idp.admin.api.routing import route
from idp.errors import NotFoundError
from idp.inputs import is_clean
from idp.sessions import service as sessions
from idp.tokens import service as pats
from idp.tokens import usage
from idp.users import service as users


@route(
    "GET",
    "/sessions",
    "List live login sessions, newest first",
    query=schemas.SessionQuery,
    response=schemas.SessionList,
    errors=(404,),
    tag="sessions",
)
def list_sessions(query: schemas.SessionQuery) -> schemas.SessionList:
    user = users.require_user_by_email(query.user) if query.user else None
    page, cursor = page_of(
        query, lambda after, limit: sessions.page_logins(user, before=after, limit=limit)
    )
    items = [schemas.Session.model_validate(sessions.describe_login(login)) for login in page]
    return schemas.SessionList(items=items, next=cursor)


REVOCATION = (
    "The session ends at the IdP at once: its refresh tokens are revoked, its access tokens "
    "introspect inactive, and every app that joined it is told (OIDC back-channel logout, "
    "SAML logout where the SP can be reached)."
)


@route(
    "DELETE",
    "/sessions/{sid}",
    "End one session everywhere",
    status=204,
    description=REVOCATION + " Ending a session that already ended changes nothing.",
    path_params={"sid": str},
    tag="sessions",
)
def revoke_session(sid: str) -> None:
    login = sessions.get_login_by_sid(sid) if len(sid) <= 64 and is_clean(sid) else None
    if login is None:
        raise NotFoundError("no session with this id")
    sessions.revoke_login(login, reason="admin_revoked")


@route(
    "DELETE",
    "/sessions",
    "End every session of a user everywhere",
    query=schemas.UserSessionsQuery,
    response=schemas.SessionsEnded,
    description=REVOCATION,
    errors=(404,),
    tag="sessions",
)
def revoke_user_sessions(query: schemas.UserSessionsQuery) -> schemas.SessionsEnded:
    user = users.require_user_by_email(query.user)
    ended = sessions.revoke_user_sessions(user, reason="admin_revoked")
    return schemas.SessionsEnded(ended=len(ended))


@route(
    "GET",
    "/tokens",
    "List personal access tokens (revoked and expired included; never a secret)",
    query=schemas.TokenQuery,
    response=schemas.TokenList,
    errors=(404,),
    tag="tokens",
)
def list_tokens(query: schemas.TokenQuery) -> schemas.TokenList:
    user = users.require_user_by_email(query.user) if query.user else None
    page, cursor = page_of(
        query, lambda after, limit: pats.list_tokens(user, after=after, limit=limit)
    )
    items = [schemas.Token.model_validate(pats.describe_token(row)) for row in page]
    return schemas.TokenList(items=items, next=cursor)


@route(
    "DELETE",
    "/tokens/{id}",
    "Revoke a personal access token",
    status=204,
    description="It stops working at once; revoking it again changes nothing.",
    path_params={"id": int},
    tag="tokens",
)
def revoke_token(id: int) -> None:
    pats.revoke_token(pats.require_token(id), reason="admin_revoked")


@route(
    "GET",
    "/tokens/{id}/usage",
    "The token's recent usage: one item per IP network, hour and resource, newest first",
    response=schemas.TokenUsageList,
    path_params={"id": int},
    tag="tokens",
)
def token_usage(id: int) -> schemas.TokenUsageList:
    rows = usage.recent_usage(usage.PAT, pats.require_token(id).id)
    items = [schemas.TokenUsage.model_validate(row, from_attributes=True) for row in rows]
    return schemas.TokenUsageList(items=items)
