"""Unusual token use: the rules, and telling the owner (notice, e-mail) and admins (webhook).

Rules (each with a setting: notify, revoke, off): a personal access token used from a new
network while its owner is logged in from another one; one token used from more than N
networks within an hour; a token used after its owner was disabled or changed password;
a refresh-token replay (its family is already revoked: here the owner is told too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

from flask import Flask

from idp import audit
from idp import db
from idp import outbound
from idp import outbox
from idp.models.token import PersonalAccessToken
from idp.models.token import SecurityNotice
from idp.models.user import User
from idp.sessions import service as sessions
from idp.settings import get_settings
from idp.tokens import storage
from idp.tokens import usage

NEW_NETWORK = "new_network"
MANY_NETWORKS = "many_networks"
AFTER_ACCOUNT_CHANGE = "after_account_change"
REFRESH_REPLAY = "refresh_replay"
RULE_TEXT = {
    NEW_NETWORK: "was used from a network it had never been used from, while you were "
    "logged in from another one",
    MANY_NETWORKS: "was used from more networks within an hour than expected",
    AFTER_ACCOUNT_CHANGE: "was used after your password changed or your account was disabled",
    REFRESH_REPLAY: "(an app's refresh token) was used twice: a copy may be in other hands",
}
# Outbound notices never hold a request longer than this.
SMTP_TIMEOUT = timedelta(seconds=5)
WEBHOOK_DEADLINE = timedelta(seconds=2)

logger = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Offer templates the logged-in user's unseen notices (the banner in base.html)."""
    app.context_processor(
        lambda: {"security_notices": unseen_notices_of_current_login, "notice_text": notice_text}
    )


@dataclass(frozen=True)
class Use:
    """A token presented to the IdP: which one, whose, and how to revoke it."""

    kind: str
    token_id: str
    user: User | None
    prefix: str | None = None
    revoke: Callable[[], object] | None = None


def observe(use: Use, *, resource: str, commit: bool = True) -> bool:
    """Record a direct use of a token and apply the network rules; return whether it was revoked.

    ``commit=False``: the use's row stays in the caller's transaction (a rule that acts
    commits it with its notice, in any case).
    """
    network = usage.client_network()
    if network is None:
        return False
    # Only the new-network rule (personal access tokens) asks whether the network is new.
    is_new = use.kind == usage.PAT and not storage.has_usage_from(use.kind, use.token_id, network)
    usage.record_use(
        use.kind,
        use.token_id,
        user_id=use.user.id if use.user else None,
        resource=resource,
        commit=commit,
    )
    if use.user is None:
        return False
    now = db.now()
    revoked = False
    if is_new and _logged_in_elsewhere(use.user, network):
        revoked |= report(NEW_NETWORK, use, network, since=now - timedelta(hours=1))
    hour = usage.hour_of(now)
    if (
        storage.count_networks(use.kind, use.token_id, hour)
        > get_settings().token_many_networks_threshold
    ):
        revoked |= report(MANY_NETWORKS, use, network, since=hour)
    return revoked


def check_account_change(row: PersonalAccessToken, revoke: Callable[[], object]) -> None:
    """Report a token presented after its owner was disabled or changed password."""
    user = row.user
    if row.revoked_at is not None:
        return
    changed = user.password_changed_at
    if user.is_disabled:
        since = usage.hour_of(db.now())
    elif changed is not None and row.created_at < changed:
        since = changed
    else:
        return
    use = Use(usage.PAT, str(row.id), user, row.prefix, revoke)
    report(AFTER_ACCOUNT_CHANGE, use, usage.client_network(), since=since)


def report_refresh_replay(family_id: str, user: User | None) -> None:
    """Tell the owner and admins that a rotated refresh token came back (family revoked)."""
    if user is not None:
        use = Use(usage.REFRESH, family_id, user)
        report(REFRESH_REPLAY, use, usage.client_network(), since=usage.hour_of(db.now()))


def _rule_action(rule: str) -> str:
    settings = get_settings()
    actions = {
        NEW_NETWORK: settings.token_rule_new_network,
        MANY_NETWORKS: settings.token_rule_many_networks,
        AFTER_ACCOUNT_CHANGE: settings.token_rule_after_account_change,
    }
    return actions.get(rule, "revoke")  # a replay has revoked the family already


def report(rule: str, use: Use, network: str | None, *, since: datetime) -> bool:
    """Act on a rule's hit once per token and period: revoke, audit, notice; return revoked.

    The e-mail and the webhook are queued after the commit and sent by the outbox's worker,
    each bound by its deadline: the request that tripped the rule does not wait for them.
    """
    action = _rule_action(rule)
    assert use.user is not None  # noqa: S101 (observe and the callers check)
    if action == "off" or storage.has_notice(rule, use.kind, use.token_id, since):
        return False
    revoked = action == "revoke" and use.revoke is not None
    if revoked and use.revoke is not None:
        use.revoke()
    notice = SecurityNotice(
        user_id=use.user.id,
        created_at=db.now(),
        rule=rule,
        token_kind=use.kind,
        token_id=use.token_id,
        prefix=use.prefix,
        network=network,
        action="revoked" if revoked or rule == REFRESH_REPLAY else "notified",
    )
    storage.add_notice(notice)
    event = describe_notice(notice, use.user)
    audit.record("token_unusual_use", **{k: v for k, v in event.items() if k != "type"})
    db.get_session().commit()
    send_email(use.user, notice)
    send_webhook(event)
    return revoked


def _logged_in_elsewhere(user: User, network: str) -> bool:
    networks = set()
    for login in sessions.list_logins(user):
        try:
            networks.add(usage.network_of(login.ip or ""))
        except ValueError:
            continue
    return bool(networks) and network not in networks


def describe_notice(notice: SecurityNotice, user: User) -> dict[str, Any]:
    """Return the notice as the webhook sends it (and the audit row holds): no token value."""
    return {
        "type": "token_unusual_use",
        "rule": notice.rule,
        "user_id": user.id,
        "user": user.email,
        "token_kind": notice.token_kind,
        "token_id": notice.token_id,
        "prefix": notice.prefix,
        "network": notice.network,
        "action": notice.action,
        "time": notice.created_at.isoformat(),
    }


def notice_text(notice: SecurityNotice) -> str:
    """Return one sentence for the owner about ``notice``."""
    name = f"Your token {notice.prefix}…" if notice.prefix else "A token of yours"
    where = f" (from {notice.network})" if notice.network else ""
    done = " It has been revoked." if notice.action == "revoked" else ""
    return f"{name} {RULE_TEXT[notice.rule]}{where}.{done}"


def unseen_notices_of_current_login() -> list[SecurityNotice]:
    """Return the logged-in user's notices not yet dismissed (none when logged out)."""
    login = sessions.current_login()
    return storage.list_unseen_notices(login.user_id) if login is not None else []


def dismiss_notices(user: User) -> None:
    """Mark every notice of ``user`` as seen; commit."""
    now = db.now()
    for notice in storage.list_unseen_notices(user.id):
        notice.seen_at = now
    db.get_session().commit()


def build_email(user: User, notice: SecurityNotice) -> EmailMessage:
    """Return the e-mail telling ``user`` about ``notice`` (never a token value)."""
    settings = get_settings()
    message = EmailMessage()
    message["From"] = settings.smtp_from or f"idp@{urlsplit(settings.issuer).hostname}"
    message["To"] = user.email
    message["Subject"] = "Unusual use of one of your tokens"
    message.set_content(
        f"{notice_text(notice)}\n\nReview your tokens at {settings.issuer}/account/tokens.\n"
        "If this was not you, revoke the token and change your password.\n"
    )
    return message


def send_email(user: User, notice: SecurityNotice) -> None:
    """Queue an e-mail to the owner when ``smtp_url`` is set (sent off the request path)."""
    smtp_url = get_settings().smtp_url
    if smtp_url is not None:
        message = build_email(user, notice)
        outbox.get_outbox().submit("security e-mail", lambda: deliver_email(smtp_url, message))


def deliver_email(smtp_url: str, message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server; a failure is logged, never raised."""
    url = urlsplit(smtp_url)
    smtp_class = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
    try:
        with smtp_class(
            url.hostname or "localhost", url.port or 0, timeout=SMTP_TIMEOUT.total_seconds()
        ) as smtp:
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        logger.warning("security e-mail not sent: %s", type(error).__name__)


def sign_webhook(body: bytes, secret: str, timestamp: int) -> str:
    """Return the ``X-Idp-Signature`` value: ``t=TIMESTAMP,v1=HMAC-SHA256(timestamp.body)``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def send_webhook(event: dict[str, Any]) -> None:
    """Queue ``event`` for the security webhook when set (POSTed off the request path)."""
    settings = get_settings()
    url, secret = settings.security_webhook_url, settings.security_webhook_secret
    if url is not None and secret:
        body = json.dumps(event, sort_keys=True).encode()
        outbox.get_outbox().submit("security webhook", lambda: deliver_webhook(url, secret, body))


def deliver_webhook(url: str, secret: str, body: bytes) -> None:
    """POST ``body``, signed as it leaves; a failure is logged, never raised."""
    headers = {
        "Content-Type": "application/json",
        # Signed when sent, not when queued: the receiver's freshness check sees the real age.
        "X-Idp-Signature": sign_webhook(body, secret, int(time.time())),
    }
    try:
        response = outbound.fetch(
            url,
            allow_private=True,  # the operator's own URL, not a relying party's
            method="POST",
            body=body,
            headers=headers,
            deadline=WEBHOOK_DEADLINE,
        )
    except outbound.FetchError as error:
        logger.warning("security webhook failed: %s", error)
        return
    if not 200 <= response.status < 300:
        logger.warning("security webhook answered %s", response.status)
