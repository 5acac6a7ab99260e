"""Server-side sessions: the cookie holds only a random key, the data stays in this process.

A logout that arrives out of band (OIDC back-channel logout, a SAML LogoutRequest) can then
end a browser's session without that browser being present: it deletes the stored entry.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import Request
from flask import Response
from flask.sessions import SessionInterface
from flask.sessions import SessionMixin
from werkzeug.datastructures import CallbackDict

SESSION_IDLE_TIMEOUT = timedelta(hours=8)
SEEN_MEMORY = timedelta(minutes=10)


class SessionStore:
    """Session data by random key, with an idle timeout; safe to share between threads."""

    def __init__(self, idle_timeout: timedelta = SESSION_IDLE_TIMEOUT) -> None:
        self._idle_timeout = idle_timeout.total_seconds()
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict[str, Any]]] = {}
        self._seen: dict[str, float] = {}

    def _prune(self, now: float) -> None:
        idle = self._idle_timeout
        expired = [key for key, (seen, _) in self._entries.items() if now - seen > idle]
        for key in expired:
            del self._entries[key]
        for value in [value for value, until in self._seen.items() if until < now]:
            del self._seen[value]

    def load(self, key: str) -> dict[str, Any] | None:
        """Return a copy of the data stored under ``key``, or None when it is unknown or idle."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries[key] = (now, entry[1])
            return dict(entry[1])

    def create(self, data: Mapping[str, Any]) -> str:
        """Store ``data`` under a new random key and return the key."""
        key = secrets.token_urlsafe(32)
        with self._lock:
            self._entries[key] = (time.monotonic(), dict(data))
        return key

    def replace(self, key: str, data: Mapping[str, Any]) -> bool:
        """Overwrite the data under ``key`` if the session still exists; say whether it did."""
        with self._lock:
            if key not in self._entries:
                # Ended meanwhile (back-channel logout): a late save must not bring it back.
                return False
            self._entries[key] = (time.monotonic(), dict(data))
            return True

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            self._entries.pop(key, None)

    def end_where(self, predicate: Callable[[Mapping[str, Any]], bool]) -> int:
        """Delete every session whose data matches ``predicate``; return how many."""
        with self._lock:
            keys = [key for key, (_, data) in self._entries.items() if predicate(data)]
            for key in keys:
                del self._entries[key]
        return len(keys)

    def count(self) -> int:
        """Return how many sessions are stored."""
        with self._lock:
            return len(self._entries)

    def first_time(self, value: str, remember: timedelta = SEEN_MEMORY) -> bool:
        """Return True the first time ``value`` is seen in ``remember``; replay protection."""
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            if value in self._seen:
                return False
            self._seen[value] = now + remember.total_seconds()
            return True


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """Flask's ``session`` backed by a :class:`SessionStore` entry."""

    def __init__(self, data: Mapping[str, Any] | None, key: str | None) -> None:
        def on_update(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.key = key
        self.modified = False
        self.rotate = False

    def regenerate(self) -> None:
        """Move the data to a new key at the next save (after login: no session fixation)."""
        self.rotate = True
        self.modified = True


class ServerSessionInterface(SessionInterface):
    """Keep ``session`` in ``store``; the cookie carries only the random key."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        key = request.cookies.get(self.get_cookie_name(app))
        data = self.store.load(key) if key else None
        return ServerSession(data, key if data is not None else None)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession):
            raise TypeError("the session was not opened by ServerSessionInterface")
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        response.vary.add("Cookie")
        if not session.modified:
            return
        if session.key is not None and (session.rotate or not session):
            self.store.delete(session.key)
            if not session:
                response.delete_cookie(name, domain=domain, path=path)
                return
            session.key = None
        if session.key is None:
            if not session:
                return
            session.key = self.store.create(dict(session))
            response.set_cookie(
                name,
                session.key,
                domain=domain,
                path=path,
                httponly=self.get_cookie_httponly(app),
                secure=self.get_cookie_secure(app),
                samesite=self.get_cookie_samesite(app),
            )
        elif not self.store.replace(session.key, dict(session)):
            response.delete_cookie(name, domain=domain, path=path)
