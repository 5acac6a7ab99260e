"""The only SQL in oidc/: clients, codes, tokens and consents.

Over 400 lines: one short function per statement the OpenID Provider runs (clients, codes,
refresh families, consents, registration), kept together so that oidc/ has one place for SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm import aliased
from sqlalchemy.orm import joinedload

from idp import db
from idp.inputs import is_clean
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.oidc import AuthorizationCode
from idp.models.oidc import Consent
from idp.models.oidc import OAuthClient
from idp.models.oidc import OAuthToken
from idp.models.oidc import hash_secret

# The statements of the token endpoint, /authorize and /userinfo, built once: each request
# only binds its values (SQLAlchemy then also reuses the statement's cache key).
_CLIENT_BY_ID = select(OAuthClient).where(OAuthClient.client_id == bindparam("client_id"))
_CODE_BY_HASH = (
    select(AuthorizationCode)
    .where(
        AuthorizationCode.code_hash == bindparam("code_hash"),
        AuthorizationCode.client_id == bindparam("client_id"),
    )
    .options(joinedload(AuthorizationCode.login).lazyload(LoginSession.user))
)
_CODE_WITH_NONCE = select(AuthorizationCode.id).where(
    AuthorizationCode.client_id == bindparam("client_id"),
    AuthorizationCode.nonce == bindparam("nonce"),
)
_CLAIM_CODE = (
    update(AuthorizationCode)
    .where(AuthorizationCode.id == bindparam("code_id"), AuthorizationCode.used_at.is_(None))
    .values(used_at=bindparam("now"))
)


def get_client(client_id: str) -> OAuthClient | None:
    """Return the enabled client with this ``client_id``, or None."""
    # Ids also come from HTTP Basic credentials and assertion claims, which no parameter
    # check sees: a NUL would be a database error on PostgreSQL.
    if not client_id or len(client_id) > 128 or not is_clean(client_id):
        return None
    client = _lookup_client(client_id)
    return None if client is None or client.is_disabled else client


def _request_cache(session: Session, name: str) -> dict[Any, Any]:
    """Return a dictionary living as long as ``session`` (one request, one command)."""
    cache: dict[Any, Any] = session.info.setdefault(f"idp.oidc.{name}", {})
    return cache


def _lookup_client(client_id: str) -> OAuthClient | None:
    # One request asks several times (authorization request validated, then answered; client
    # authentication, then the grant): one SELECT. A client deleted since is looked up again.
    session = db.get_session()
    clients = _request_cache(session, "clients")
    client: OAuthClient | None = clients.get(client_id)
    if client is None or client not in session:
        client = session.scalar(_CLIENT_BY_ID, {"client_id": client_id})
        if client is not None:
            clients[client_id] = client
    return client


def preload_clients(client_ids: list[str]) -> None:
    """Look up many clients in one SELECT, so the :func:`get_client` calls that follow ask none."""
    session = db.get_session()
    clients = _request_cache(session, "clients")
    wanted = {
        client_id
        for client_id in client_ids
        if client_id not in clients or clients[client_id] not in session
    }
    if wanted:
        for client in session.scalars(
            select(OAuthClient).where(OAuthClient.client_id.in_(sorted(wanted)))
        ):
            clients[client.client_id] = client


def client_id_exists(client_id: str) -> bool:
    """Return whether any client (even disabled) has this ``client_id``."""
    found = db.get_session().scalar(
        select(OAuthClient.id).where(OAuthClient.client_id == client_id)
    )
    return found is not None


def add_client(client: OAuthClient) -> None:
    """Persist a new client; the caller commits."""
    db.get_session().add(client)
    db.get_session().flush()


def find_client(client_id: str) -> OAuthClient | None:
    """Return the client (even disabled) with this ``client_id``, or None."""
    if not client_id or len(client_id) > 128 or not is_clean(client_id):
        return None
    return _lookup_client(client_id)


def list_clients(*, after: int | None = None, limit: int | None = None) -> list[OAuthClient]:
    """Return clients in id order (after the id ``after``, at most ``limit``)."""
    query = select(OAuthClient).order_by(OAuthClient.id)
    if after is not None:
        query = query.where(OAuthClient.id > after)
    if limit is not None:
        query = query.limit(limit)
    return list(db.get_session().scalars(query))


def revoke_tokens_of_client(client_id: str, now: datetime) -> int:
    """Revoke every live token issued to a client; return how many."""
    result = db.get_session().execute(
        update(OAuthToken)
        .where(OAuthToken.client_id == client_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def delete_client(client: OAuthClient) -> dict[str, int]:
    """Delete a client and every row issued to it; return how many of each; the caller commits."""
    session = db.get_session()
    counts: dict[str, int] = {}
    # Children first: a rotated token points at its parent.
    for name, model in (
        ("tokens", OAuthToken),
        ("authorization_codes", AuthorizationCode),
        ("consents", Consent),
    ):
        if model is OAuthToken:
            session.execute(
                update(OAuthToken)
                .where(OAuthToken.client_id == client.client_id)
                .values(parent_id=None)
            )
        result = session.execute(delete(model).where(model.client_id == client.client_id))
        counts[name] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    result = session.execute(
        delete(LogoutDelivery).where(
            LogoutDelivery.protocol == "oidc", LogoutDelivery.rp == client.client_id
        )
    )
    counts["logout_deliveries"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.delete(client)
    session.flush()
    return counts


def add_code(code: AuthorizationCode) -> None:
    session = db.get_session()
    session.add(code)
    _request_cache(session, "unused_nonces").pop((code.client_id, code.nonce), None)


def get_code(code: str, client_id: str) -> AuthorizationCode | None:
    """Return the code issued to ``client_id`` (used or not), or None."""
    return db.get_session().scalar(
        _CODE_BY_HASH, {"code_hash": hash_secret(code), "client_id": client_id}
    )


def nonce_was_used(client_id: str, nonce: str) -> bool:
    """Return whether a code of this client already carried ``nonce``.

    An authorization request is validated, then answered: the second check in the same
    request reuses the first's "unused" until a code is added.
    """
    session = db.get_session()
    unused = _request_cache(session, "unused_nonces")
    if (client_id, nonce) in unused:
        return False
    found = session.scalar(_CODE_WITH_NONCE, {"client_id": client_id, "nonce": nonce})
    if found is None:
        unused[(client_id, nonce)] = True
    return found is not None


def add_token(token: OAuthToken) -> None:
    db.get_session().add(token)
    db.get_session().flush()


# A token's login belongs to the token's user: that user is loaded once, through
# ``token.user``; ``token.login.user`` then comes from the session's identity map, no query.
_TOKEN_LOADS = (joinedload(OAuthToken.login).lazyload(LoginSession.user),)


_TOKEN_BY_JTI = select(OAuthToken).where(OAuthToken.jti == bindparam("jti")).options(*_TOKEN_LOADS)


def get_token_by_jti(jti: str) -> OAuthToken | None:
    return db.get_session().scalar(_TOKEN_BY_JTI, {"jti": jti})


def _granted_scope_of(family_id: Any) -> Any:
    """Return the scope of a refresh family's first issuance (the grant itself), as SQL."""
    root = aliased(OAuthToken)
    return (
        select(root.scope)
        .where(root.family_id == family_id, root.parent_id.is_(None))
        .order_by(root.id)
        .limit(1)
        .scalar_subquery()
    )


_TOKEN_BY_REFRESH_HASH = (
    select(OAuthToken, _granted_scope_of(OAuthToken.family_id))
    .where(OAuthToken.refresh_token_hash == bindparam("refresh_token_hash"))
    .options(*_TOKEN_LOADS)
)
_GRANTED_SCOPE = select(_granted_scope_of(bindparam("family_id")))


def get_token_by_refresh_token(refresh_token: str) -> OAuthToken | None:
    """Return the issuance of a refresh token; its family's granted scope comes along."""
    session = db.get_session()
    found = session.execute(
        _TOKEN_BY_REFRESH_HASH, {"refresh_token_hash": hash_secret(refresh_token)}
    ).first()
    if found is None:
        return None
    token, granted = found
    if granted is not None:
        _request_cache(session, "granted_scopes")[token.family_id] = granted
    result: OAuthToken = token
    return result


def get_child_tokens(token: OAuthToken) -> list[OAuthToken]:
    """Return every token issued by rotating ``token`` (more than one after a retry)."""
    return list(
        db.get_session().scalars(
            select(OAuthToken).where(OAuthToken.parent_id == token.id).order_by(OAuthToken.id)
        )
    )


def get_granted_scope(family_id: str) -> str | None:
    """Return the scope of a refresh family's first issuance: the one the grant produced.

    It never changes: asked at most once per request (none after the refresh token lookup).
    """
    session = db.get_session()
    scopes = _request_cache(session, "granted_scopes")
    scope: str | None = scopes.get(family_id)
    if scope is None:
        scope = session.scalar(_GRANTED_SCOPE, {"family_id": family_id})
        if scope is not None:
            scopes[family_id] = scope
    return scope


def claim_code(code_id: int, now: datetime) -> bool:
    """Mark a code used unless it already is; return whether this caller won it.

    One conditional UPDATE, so two concurrent redemptions cannot both succeed.
    """
    result = db.get_session().execute(_CLAIM_CODE, {"code_id": code_id, "now": now})
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def _update_live_token(column: str) -> Any:
    # One conditional UPDATE: of two concurrent callers exactly one sees rowcount 1.
    return (
        update(OAuthToken)
        .where(
            OAuthToken.id == bindparam("token_id"),
            OAuthToken.rotated_at.is_(None),
            OAuthToken.revoked_at.is_(None),
        )
        .values({column: bindparam("now")})
    )


_CLAIM_ROTATION = _update_live_token("rotated_at")
_REVOKE_UNUSED = _update_live_token("revoked_at")


def claim_rotation(token_id: int, now: datetime) -> bool:
    """Mark a live refresh token rotated; return whether this caller won it."""
    result = db.get_session().execute(_CLAIM_ROTATION, {"token_id": token_id, "now": now})
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def revoke_unused_token(token_id: int, now: datetime) -> bool:
    """Revoke a token that is neither revoked nor rotated; return whether this caller did."""
    result = db.get_session().execute(_REVOKE_UNUSED, {"token_id": token_id, "now": now})
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def revoke_family(family_id: str, now: datetime) -> int:
    """Revoke every token of a refresh family; return how many were live."""
    result = db.get_session().execute(
        update(OAuthToken)
        .where(OAuthToken.family_id == family_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def revoke_tokens_of_code(code_id: int, now: datetime) -> int:
    """Revoke every token descended from an authorization code (RFC 6749 §4.1.2)."""
    families = select(OAuthToken.family_id).where(OAuthToken.authorization_code_id == code_id)
    result = db.get_session().execute(
        update(OAuthToken)
        .where(OAuthToken.family_id.in_(families), OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_issuances_of_logins(login_session_ids: list[int]) -> list[tuple[int, int, str, str]]:
    """Return ``(login_session_id, id, family_id, client_id)`` of every issuance in them."""
    if not login_session_ids:
        return []
    query = select(
        OAuthToken.login_session_id, OAuthToken.id, OAuthToken.family_id, OAuthToken.client_id
    ).where(OAuthToken.login_session_id.in_(login_session_ids))
    return [(int(a or 0), b, c, d) for a, b, c, d in db.get_session().execute(query)]


def revoke_tokens_of_logins(login_session_ids: list[int], now: datetime) -> int:
    """Revoke every token issued in these login sessions; return how many were live."""
    result = db.get_session().execute(
        update(OAuthToken)
        .where(OAuthToken.login_session_id.in_(login_session_ids), OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def get_consent(user_id: int, client_id: str) -> Consent | None:
    return db.get_session().scalar(
        select(Consent).where(Consent.user_id == user_id, Consent.client_id == client_id)
    )


def save_consent(user_id: int, client_id: str, scopes: list[str], now: datetime) -> Consent:
    """Record (or widen) the user's consent to a client; the caller commits."""
    consent = get_consent(user_id, client_id)
    if consent is None:
        consent = Consent(user_id=user_id, client_id=client_id, scopes=[], granted_at=now)
        db.get_session().add(consent)
    previous = set(consent.scopes) if consent.revoked_at is None else set()
    consent.scopes = sorted(previous | set(scopes))
    consent.granted_at = now
    consent.revoked_at = None
    return consent


def list_live_consents(user_id: int) -> list[tuple[Consent, OAuthClient]]:
    """Return the user's unrevoked consents with their (existing) clients, newest first."""
    rows = db.get_session().execute(
        select(Consent, OAuthClient)
        .join(OAuthClient, OAuthClient.client_id == Consent.client_id)
        .where(Consent.user_id == user_id, Consent.revoked_at.is_(None))
        .order_by(Consent.granted_at.desc(), Consent.id.desc())
    )
    return [(consent, client) for consent, client in rows]


def revoke_tokens_of_user_at_client(user_id: int, client_id: str, now: datetime) -> int:
    """Revoke every live token issued to ``client_id`` for the user; return how many."""
    result = db.get_session().execute(
        update(OAuthToken)
        .where(
            OAuthToken.user_id == user_id,
            OAuthToken.client_id == client_id,
            OAuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def get_client_names(client_ids: list[str]) -> dict[str, str]:
    """Return ``{client_id: client_name}`` of those clients that exist."""
    if not client_ids:
        return {}
    rows = db.get_session().execute(
        select(OAuthClient.client_id, OAuthClient.client_name).where(
            OAuthClient.client_id.in_(client_ids)
        )
    )
    return {client_id: name for client_id, name in rows}


def purge_codes(before: datetime) -> int:
    """Delete a batch of codes that expired before ``before``; return how many."""
    return db.delete_batch(AuthorizationCode.id, AuthorizationCode.expires_at < before)


def purge_tokens(before: datetime) -> int:
    """Delete a batch of issuances whose whole refresh family expired before ``before``."""
    member = aliased(OAuthToken)
    family_alive = (
        select(member.id)
        .where(
            member.family_id == OAuthToken.family_id,
            (member.access_expires_at >= before) | (member.refresh_expires_at >= before),
        )
        .exists()
    )
    # A rotated-out token stays while its family lives: its reuse must still be detected.
    return db.delete_batch(
        OAuthToken.id,
        OAuthToken.access_expires_at < before,
        ~family_alive,
        newest_first=True,
    )
