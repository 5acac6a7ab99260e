"""Outbound HTTP for URLs a relying party chose (jwks_uri, back-channel logout): SSRF-safe.

One total deadline per fetch, no redirects, a capped response, and for untrusted URLs https
only to public addresses, checked after DNS resolution and connected to by the checked IP
(so a second DNS answer cannot point elsewhere: DNS rebinding).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

FETCH_DEADLINE = timedelta(seconds=2)
MAX_RESPONSE_SIZE = 64 * 1024


class FetchError(Exception):
    """The URL was refused or the fetch failed; ``str()`` is a short, loggable reason."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def is_public_address(address: str) -> bool:
    """Return whether ``address`` is a globally routable unicast IP (no loopback, private...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def validate_url(url: str, *, allow_private: bool) -> tuple[str, str, int]:
    """Return ``(scheme, host, port)`` of a fetchable URL.

    Raises:
        FetchError: not http(s), or plain http for an untrusted URL, or no host.

    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    allowed = ("http", "https") if allow_private else ("https",)
    if scheme not in allowed:
        raise FetchError(f"only {' or '.join(allowed)} URLs are fetched")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError("invalid port") from None
    if not parts.hostname:
        raise FetchError("no host")
    return scheme, parts.hostname, port


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    # getaddrinfo cannot be interrupted: it runs in a thread the deadline need not wait for.
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            result["error"] = error

    thread = threading.Thread(target=run, name="idp-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if "infos" not in result:
        raise FetchError("host not resolved" if "error" in result else "timed out")
    return [str(info[4][0]) for info in result["infos"]]


def _check_public(addresses: list[str]) -> None:
    # Every answer is checked: a name mixing a public and an internal address is refused.
    if not all(is_public_address(item) for item in addresses):
        raise FetchError("refused: the host is not a public address")


def resolve_checked(host: str, port: int, *, allow_private: bool, timeout: float) -> str:
    """Resolve ``host`` and return the address to connect to.

    Raises:
        FetchError: it does not resolve, or (untrusted) any address is not public.

    """
    addresses = _resolve(host, port, timeout)
    if not addresses:
        raise FetchError("host not resolved")
    if not allow_private:
        _check_public(addresses)
    return addresses[0]


def validate_public_url(url: str) -> None:
    """Refuse a URL an untrusted party registers unless it is https to public addresses.

    A name that does not resolve now passes: every fetch checks again.

    Raises:
        FetchError: not https, or the host is (or resolves to) a non-public address.

    """
    _scheme, host, port = validate_url(url, allow_private=False)
    try:
        addresses = _resolve(host, port, FETCH_DEADLINE.total_seconds())
    except FetchError:
        return
    _check_public(addresses)


def fetch(
    url: str,
    *,
    allow_private: bool,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    deadline: timedelta = FETCH_DEADLINE,
    max_size: int = MAX_RESPONSE_SIZE,
) -> Response:
    """Send one request and return the answer; redirects are answers, not followed.

    Raises:
        FetchError: refused URL or address, deadline exceeded, oversized answer, I/O error.

    """
    scheme, host, port = validate_url(url, allow_private=allow_private)
    seconds = deadline.total_seconds()
    end = time.monotonic() + seconds
    address = resolve_checked(host, port, allow_private=allow_private, timeout=seconds)
    connection: http.client.HTTPConnection
    remaining = max(end - time.monotonic(), 0.001)
    if scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(host, port, timeout=remaining, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=remaining)

    def connect_checked(_address: Any, timeout: Any = None, source: Any = None) -> socket.socket:
        # Host header and TLS name stay the URL's; the TCP connection goes to the checked IP.
        return socket.create_connection((address, port), timeout, source)

    connection._create_connection = connect_checked  # type: ignore[attr-defined]
    # A per-read timeout lets a server that drips one byte at a time hold us for ever: the
    # watchdog closes the socket when the whole fetch's time is up.
    watchdog = threading.Timer(remaining, _abort, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        target = urlsplit(url)._replace(scheme="", netloc="", fragment="").geturl() or "/"
        connection.request(method, target, body=body, headers=dict(headers or {}))
        response = connection.getresponse()
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_size:
            raise FetchError("response too large")
        data = response.read(max_size + 1)
        if len(data) > max_size:
            raise FetchError("response too large")
    except FetchError:
        raise
    except (OSError, http.client.HTTPException, ValueError) as error:
        if time.monotonic() >= end:
            raise FetchError("timed out") from None
        raise FetchError(str(error)[:200] or type(error).__name__) from None
    finally:
        watchdog.cancel()
        connection.close()
    if time.monotonic() >= end:
        raise FetchError("timed out")
    return Response(response.status, data)


def _abort(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
