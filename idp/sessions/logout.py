"""Participants registry and logout fan-out: every way a session ends reaches every RP.

Protocols register handlers at init; this module knows nothing about OIDC or SAML.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import NamedTuple

from flask import Flask
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from idp import audit
from idp import db
from idp.models.login import LoginSession
from idp.models.login import LogoutDelivery
from idp.models.login import SessionParticipant
from idp.sessions import storage

logger = logging.getLogger(__name__)

# How often each server process sweeps expired sessions and retries deliveries.
MAINTENANCE_INTERVAL = timedelta(seconds=5)
# Failed back-channel deliveries are retried with exponential back-off for this long, then
# abandoned.
RETRY_WINDOW = timedelta(hours=1)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY_INTERVAL = timedelta(minutes=10)
MAX_PARALLEL_DELIVERIES = 8


class Delivery(NamedTuple):
    """A back-channel logout to queue: of one session, to one RP of the handler's protocol."""

    login_session_id: int
    rp: str
    uri: str


# A protocol's part of ending sessions, inside the ending transaction: given the sessions that
# ended, the participants of that protocol in any of them (each names its login_session_id)
# and the reason, it revokes what it issued in them and returns the deliveries to queue. One
# call for all the sessions, so each table is written once however many sessions end.
EndHandler = Callable[[Sequence[LoginSession], list[SessionParticipant], str], list[Delivery]]
AfterCommit = Callable[[Sequence[LoginSession]], None]
FrontChannel = Callable[[LoginSession, list[SessionParticipant]], list[str]]
Periodic = Callable[[], object]
# The network half of one delivery, run in a worker thread without the app context: it sends
# and returns None when the RP took the message, else a short reason.
Send = Callable[[], str | None]
# A protocol's sender prepares one delivery in the app context (finds the RP, signs a fresh
# message) and returns its Send, or a reason it cannot be sent at all (the RP is gone).
Sender = Callable[[LogoutDelivery], Send | str]
# Whether a participant (its protocol's rp) hears of a session's end without the browser.
Reachable = Callable[[str], bool]


@dataclass
class LogoutRegistry:
    """What each protocol does when a session ends; filled by the protocols' init_app."""

    on_end: dict[str, EndHandler] = field(default_factory=dict)
    after_commit: list[AfterCommit] = field(default_factory=list)
    front_channel: dict[str, FrontChannel] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)
    senders: dict[str, Sender] = field(default_factory=dict)
    reachable: dict[str, Reachable] = field(default_factory=dict)
    # The session service's own sweeps (expiry, purge): run first, and a failure stops the run.
    sweeps: list[Periodic] = field(default_factory=list)


def init_app(app: Flask) -> None:
    registry = LogoutRegistry()
    registry.after_commit.append(deliver_for)
    registry.periodic.append(deliver_due)
    app.extensions["idp.logout"] = registry


def get_registry(app: Flask | None = None) -> LogoutRegistry:
    registry: LogoutRegistry = (app or current_app).extensions["idp.logout"]
    return registry


def join(login: LoginSession, protocol: str, rp: str) -> None:
    """Record that ``rp`` received tokens or assertions in ``login``; the caller commits."""
    storage.record_participant(login.id, protocol, rp, db.now())


def mark_logged_out(joined: Sequence[SessionParticipant]) -> None:
    """Record in one UPDATE that ``joined`` were told of the end; the caller commits."""
    if not joined:
        return
    now = db.now()
    storage.set_logged_out([item.id for item in joined], now)
    for item in joined:
        set_committed_value(item, "logged_out_at", now)


def participants(login: LoginSession) -> list[SessionParticipant]:
    """Return the relying parties that joined ``login``, first joined first."""
    return storage.list_participants(login)


def participants_of(logins: list[LoginSession]) -> dict[int, list[SessionParticipant]]:
    """Return the relying parties that joined each of ``logins`` (by id), in one query."""
    return storage.list_participants_of(logins)


def is_reachable_without_browser(participant: SessionParticipant) -> bool:
    """Return whether ``participant`` is told of the session's end by back-channel.

    False for RPs with front-channel logout only: they hear of it only when a browser that
    has the IdP's logged-out page open loads their logout URL.
    """
    reachable = get_registry().reachable.get(participant.protocol)
    return reachable is not None and reachable(participant.rp)


def on_sessions_ended(
    logins: Sequence[LoginSession], reason: str, *, initiator: tuple[str, str] | None = None
) -> None:
    """Run every protocol's end handler inside the ending transaction (revoke, enqueue).

    ``initiator`` (protocol, rp) started the logout itself: no delivery to it is queued.
    """
    if not logins:
        return
    joined = [item for items in participants_of(list(logins)).values() for item in items]
    queued: list[tuple[str, Delivery]] = []
    for protocol, handler in get_registry().on_end.items():
        for delivery in handler(
            logins, [item for item in joined if item.protocol == protocol], reason
        ):
            # The initiator started the logout itself: it is sent no message about it.
            if (protocol, delivery.rp) != initiator:
                queued.append((protocol, delivery))
    _enqueue(queued)


def after_sessions_ended(logins: Sequence[LoginSession]) -> None:
    """Run post-commit work (back-channel deliveries) for sessions that just ended."""
    if not logins:
        return
    for hook in get_registry().after_commit:
        try:
            hook(logins)
        except Exception:  # delivery is retried later; a failure must not fail the logout
            logger.exception("post-logout hook failed")


# -- the back-channel delivery queue, shared by the protocols ----------------------------------


# The sessions this database session queued deliveries of, for deliver_for after the commit.
_QUEUED = "idp.logout.queued"


def _enqueue(queued: Sequence[tuple[str, Delivery]]) -> None:
    """Queue back-channel logouts (protocol, delivery) in one INSERT; the caller commits."""
    if not queued:
        return
    now = db.now()
    db.get_session().info.setdefault(_QUEUED, set()).update(
        delivery.login_session_id for _, delivery in queued
    )
    storage.add_logout_deliveries(
        [
            {
                "protocol": protocol,
                "rp": delivery.rp,
                "login_session_id": delivery.login_session_id,
                "uri": delivery.uri,
                "attempts": 0,
                "created_at": now,
                # The ending request sends them right after commit (deliver_for); the sweeps
                # of other workers take one only if that attempt never happened.
                "next_attempt_at": now + FIRST_RETRY,
                "give_up_at": now + RETRY_WINDOW,
            }
            for protocol, delivery in queued
        ]
    )


def _prepare(delivery: LogoutDelivery) -> Send | str:
    sender = get_registry().senders.get(delivery.protocol)
    if sender is None:
        return f"no sender for {delivery.protocol}"
    return sender(delivery)


def _audit_fields(delivery: LogoutDelivery, **details: object) -> dict[str, Any]:
    return {
        "sid": delivery.login.sid,
        "user_id": delivery.login.user_id,
        "rp": delivery.rp,
        "protocol": delivery.protocol,
        "attempts": delivery.attempts,
        **details,
    }


def _record(
    delivery: LogoutDelivery, error: str | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    """Record one attempt's result: delivered, failed (retried later) or abandoned.

    Return its audit event, for the caller to record with the others.
    """
    delivery.attempts += 1
    if error is None:
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return "backchannel_logout_delivered", _audit_fields(delivery)
    delivery.last_error = error
    backoff = min(FIRST_RETRY * 2 ** (delivery.attempts - 1), MAX_RETRY_INTERVAL)
    if now + backoff >= delivery.give_up_at:
        delivery.failed_at = now
        delivery.next_attempt_at = None
        return "backchannel_logout_abandoned", _audit_fields(delivery, error=error)
    delivery.next_attempt_at = now + backoff
    return "backchannel_logout_failed", _audit_fields(delivery, error=error)


def _attempt(deliveries: Sequence[LogoutDelivery]) -> None:
    """Send deliveries in parallel, each within its sender's deadline; record each; commit."""
    if not deliveries:
        return
    jobs: list[tuple[LogoutDelivery, Send]] = []
    for delivery in deliveries:
        prepared = _prepare(delivery)
        if isinstance(prepared, str):
            delivery.failed_at = db.now()
            delivery.next_attempt_at = None
            delivery.last_error = prepared
            continue
        jobs.append((delivery, prepared))
    # Each send ends within outbound.FETCH_DEADLINE, so a user's logout waits at most that
    # long; what did not land is retried by the sweep.
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_DELIVERIES, len(jobs) or 1)) as pool:
        results = list(pool.map(lambda job: job[1](), jobs))
    now = db.now()
    audit.record_many(
        [
            _record(delivery, error, now)
            for (delivery, _send), error in zip(jobs, results, strict=True)
        ]
    )
    db.get_session().commit()


def deliver_for(logins: Sequence[LoginSession]) -> None:
    """Deliver the queued logouts of sessions that just ended (post-commit hook)."""
    # Sessions whose apps hear of nothing by back-channel cost no query here.
    queued: set[int] = db.get_session().info.pop(_QUEUED, set())
    ids = [login.id for login in logins if login.id in queued]
    if ids:
        _attempt(storage.claim_new_deliveries(ids))


def deliver_due() -> int:
    """Retry every delivery whose back-off has passed; return how many were tried."""
    due = storage.claim_due_deliveries(db.now())
    _attempt(due)
    return len(due)


def front_channel_urls(login: LoginSession, *, initiator: str | None = None) -> list[str]:
    """Return the URLs the logged-out page loads in hidden iframes (Front-Channel Logout 1.0).

    ``initiator`` (a client_id or entity ID) is left out: it started the logout itself.
    """
    joined = [item for item in participants(login) if item.rp != initiator]
    urls: list[str] = []
    for protocol, builder in get_registry().front_channel.items():
        urls.extend(builder(login, [item for item in joined if item.protocol == protocol]))
    return urls


def run_maintenance() -> None:
    """Sweep expired sessions (so their participants hear of it), purge, run periodic tasks."""
    registry = get_registry()
    for sweep in registry.sweeps:
        sweep()
    for task in registry.periodic:
        try:
            task()
        except Exception:
            logger.exception("periodic logout task failed")


def start_maintenance_thread(app: Flask) -> threading.Thread:
    """Run :func:`run_maintenance` every few seconds in a daemon thread of this process."""

    def loop() -> None:
        stop: threading.Event = app.extensions["idp.logout.stop"]
        while not stop.wait(MAINTENANCE_INTERVAL.total_seconds()):
            try:
                with app.app_context():
                    run_maintenance()
            except Exception:
                logger.exception("maintenance failed")

    app.extensions["idp.logout.stop"] = threading.Event()
    thread = threading.Thread(target=loop, name="idp-maintenance", daemon=True)
    thread.start()
    return thread
