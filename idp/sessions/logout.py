"""Participants registry and logout fan-out: every way a session ends reaches every RP.

Protocols register handlers at init; this module knows nothing about OIDC or SAML.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from datetime import timedelta

from flask import Flask
from flask import current_app

from idp import db
from idp.models.login import LoginSession
from idp.models.login import SessionParticipant
from idp.sessions import storage

logger = logging.getLogger(__name__)

# How often each server process sweeps expired sessions and retries deliveries.
MAINTENANCE_INTERVAL = timedelta(seconds=5)

EndHandler = Callable[[LoginSession, list[SessionParticipant], str], None]
AfterCommit = Callable[[Sequence[LoginSession]], None]
FrontChannel = Callable[[LoginSession, list[SessionParticipant]], list[str]]
Periodic = Callable[[], object]


@dataclass
class LogoutRegistry:
    """What each protocol does when a session ends; filled by the protocols' init_app."""

    on_end: dict[str, EndHandler] = field(default_factory=dict)
    after_commit: list[AfterCommit] = field(default_factory=list)
    front_channel: dict[str, FrontChannel] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)
    # The session service's own sweeps (expiry, purge): run first, and a failure stops the run.
    sweeps: list[Periodic] = field(default_factory=list)


def init_app(app: Flask) -> None:
    app.extensions["idp.logout"] = LogoutRegistry()


def get_registry(app: Flask | None = None) -> LogoutRegistry:
    registry: LogoutRegistry = (app or current_app).extensions["idp.logout"]
    return registry


def join(login: LoginSession, protocol: str, rp: str) -> SessionParticipant:
    """Record that ``rp`` received tokens or assertions in ``login``; the caller commits."""
    now = db.now()
    participant = storage.get_participant(login, protocol, rp)
    if participant is None:
        participant = SessionParticipant(
            login_session_id=login.id, protocol=protocol, rp=rp, joined_at=now, last_seen_at=now
        )
        storage.add_participant(participant)
    participant.last_seen_at = now
    return participant


def participants(login: LoginSession) -> list[SessionParticipant]:
    """Return the relying parties that joined ``login``, first joined first."""
    return storage.list_participants(login)


def on_session_ended(login: LoginSession, reason: str) -> None:
    """Run every protocol's end handler inside the ending transaction (revoke, enqueue)."""
    joined = participants(login)
    registry = get_registry()
    for protocol, handler in registry.on_end.items():
        handler(login, [item for item in joined if item.protocol == protocol], reason)


def after_sessions_ended(logins: Sequence[LoginSession]) -> None:
    """Run post-commit work (back-channel deliveries) for sessions that just ended."""
    if not logins:
        return
    for hook in get_registry().after_commit:
        try:
            hook(logins)
        except Exception:  # delivery is retried later; a failure must not fail the logout
            logger.exception("post-logout hook failed")


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
