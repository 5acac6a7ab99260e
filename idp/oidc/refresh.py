"""The refresh_token grant: rotation on every use, reuse detection, a retry grace.

RFC 6749 §6; RFC 9700 §4.14.2 (refresh token rotation, a reused token revokes its family).
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import InvalidScopeError

from idp import audit
from idp import db
from idp.models.oidc import OAuthToken
from idp.oidc import storage
from idp.oidc.grants import CLIENT_AUTH_METHODS
from idp.oidc.grants import EndUser
from idp.sessions.service import is_login_active
from idp.tokens import monitor
from idp.tokens import usage

# A confidential client that lost the response to a refresh may retry with the same token
# this long (its retry authenticates); public clients get no grace.
REFRESH_GRACE = timedelta(seconds=5)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Rotate on every use; a reused rotated-out token revokes its family (RFC 9700 §4.14.2)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    # The child a retry within REFRESH_GRACE replaces (its response never reached the client).
    lost_child: OAuthToken | None = None
    # The use of a live refresh token, recorded in the rotation's transaction.
    observed: monitor.Use | None = None

    def validate_token_request(self) -> None:
        client = self._validate_request_client()
        self.request.client = client
        refresh_token = self.request.form.get("refresh_token")
        if not refresh_token:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        token = self.authenticate_refresh_token(refresh_token)
        if token is None:
            raise InvalidGrantError()
        # RFC 6749 §6: "The requested scope MUST NOT include any scope not originally
        # granted by the resource owner".
        requested = set((self.request.payload.scope or "").split())
        if not requested <= set(_granted_scope(token).split()):
            db.get_session().commit()  # the use was recorded all the same
            raise InvalidScopeError()
        self.request.refresh_token = token

    def authenticate_refresh_token(self, refresh_token: str) -> OAuthToken | None:
        token = storage.get_token_by_refresh_token(refresh_token)
        # Another client's token is refused without side effects: it cannot revoke a family.
        if token is None or token.client_id != self.request.client.get_client_id():
            return None
        if token.revoked_at is not None:
            return None
        now = db.now()
        if token.rotated_at is None:
            if not _is_refreshable(token, now):
                return None
            family = token.family_id
            use = monitor.Use(
                usage.REFRESH, family, token.user, None, lambda: storage.revoke_family(family, now)
            )
            # The use is committed with the rotation (save_token): one commit per refresh.
            self.observed = use
            return None if monitor.observe(use, resource=token.client_id, commit=False) else token
        children = storage.get_child_tokens(token)
        lost = children[0] if len(children) == 1 else None
        # The grace is only for a confidential client, whose retry had to authenticate: a
        # thief replaying a public client's (PKCE app's) old token would take the family over.
        within_grace = (
            not self.request.client.is_public
            and now - token.rotated_at <= REFRESH_GRACE
            and lost is not None
            and lost.rotated_at is None
            and lost.revoked_at is None
            and _is_refreshable(token, now)
        )
        if within_grace:
            # The client retried (once) after losing the response: replace the child. Still
            # audited: a thief holding the client's credentials looks the same.
            self.lost_child = lost
            _record_reuse(token, within_grace=True, tokens_revoked=0)
            return token
        # RFC 9700 §4.14.2: reuse of a rotated refresh token revokes the family.
        revoked = storage.revoke_family(token.family_id, now)
        _record_reuse(token, within_grace=False, tokens_revoked=revoked)
        monitor.report_refresh_replay(token.family_id, token.user)
        return None

    def authenticate_user(self, refresh_token: OAuthToken) -> EndUser | None:
        if refresh_token.user is None or refresh_token.login is None:
            return None
        return EndUser(
            user=refresh_token.user,
            login=refresh_token.login,
            client=self.request.client,
            claims=refresh_token.claims,
        )

    def issue_token(self, user: EndUser, refresh_token: OAuthToken) -> dict[str, Any]:
        # RFC 6749 §6: an omitted scope "is treated as equal to the scope originally granted".
        scope = self.request.payload.scope or _granted_scope(refresh_token)
        token: dict[str, Any] = self.generate_token(
            user=user, scope=scope, include_refresh_token=True
        )
        return token

    def save_token(self, token: dict[str, Any]) -> None:
        # Rotation is claimed in the transaction that stores the new pair: Authlib's
        # revoke_old_credential runs after save_token committed, and concurrent uses of one
        # token could both succeed.
        # https://github.com/authlib/authlib/blob/v1.9.10/authlib/oauth2/rfc6749/grants/refresh_token.py#L126-L127
        parent: OAuthToken = self.request.refresh_token
        now = db.now()
        if self.lost_child is not None:
            won = storage.revoke_unused_token(self.lost_child.id, now)
        else:
            won = storage.claim_rotation(parent.id, now)
        if not won:
            db.get_session().rollback()
            if self.observed is not None:  # the rollback took the use's record: write it again
                usage.record_use(
                    usage.REFRESH,
                    self.observed.token_id,
                    user_id=self.observed.user.id if self.observed.user else None,
                    resource=parent.client_id,
                )
            raise InvalidGrantError()
        # Stores the new pair and commits it with the rotation and the use's record.
        self.server.save_token(token, self.request)

    def revoke_old_credential(self, refresh_token: OAuthToken) -> None:
        """Do nothing: save_token already rotated the old token."""


def _record_reuse(token: OAuthToken, *, within_grace: bool, tokens_revoked: int) -> None:
    audit.record(
        "refresh_token_reused",
        user_id=token.user_id,
        sid=token.login.sid if token.login else None,
        rp=token.client_id,
        within_grace=within_grace,
        tokens_revoked=tokens_revoked,
    )
    db.get_session().commit()


def _is_refreshable(token: OAuthToken, now: datetime) -> bool:
    if token.refresh_expires_at is None or now >= token.refresh_expires_at:
        return False
    return token.login is not None and is_login_active(token.login, now)


def _granted_scope(token: OAuthToken) -> str:
    # Every refresh token of a family carries the scope of the grant that began it.
    granted = storage.get_granted_scope(token.family_id)
    return granted if granted is not None else token.scope
