"""idp.outbound against real loopback servers: deadline, redirects, size cap, address checks."""

from __future__ import annotations

import pytest

from idp import outbound
from tests.helpers import receiver as rx


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("fe80::1%eth0", False),
        ("fd12:3456::1", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 (an address to classify, not to bind)
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert outbound.is_public_address(address) is public


def test_an_operator_url_on_loopback_is_fetched() -> None:
    with rx.running_receiver(body=b'{"keys": []}') as server:
        response = outbound.fetch(server.endpoint("/jwks"), allow_private=True)
    assert response == outbound.Response(200, b'{"keys": []}')


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_untrusted_url_on_loopback_is_refused_before_connecting(host: str) -> None:
    with rx.running_receiver() as server:
        port = server.url.rsplit(":", 1)[1]
        for scheme in ("https", "http"):
            with pytest.raises(outbound.FetchError):
                outbound.fetch(f"{scheme}://{host}:{port}/hook", allow_private=False)
        assert server.received == []


def test_redirects_are_answers_not_followed() -> None:
    with rx.running_receiver() as target, rx.running_receiver(redirect_to=target.url) as first:
        response = outbound.fetch(first.endpoint(), allow_private=True, method="POST", body=b"")
    assert response.status == 302
    assert target.received == []


def test_one_deadline_for_the_whole_fetch() -> None:
    with rx.running_receiver(body=b"x" * 100, drip=0.1) as slow:
        with pytest.raises(outbound.FetchError, match="timed out"):
            outbound.fetch(slow.endpoint(), allow_private=True)
        assert rx.wait_for(lambda: slow.abandoned == 1)


def test_an_oversized_answer_is_refused() -> None:
    with rx.running_receiver(body=b"x" * (outbound.MAX_RESPONSE_SIZE + 1)) as huge:
        with pytest.raises(outbound.FetchError, match="too large"):
            outbound.fetch(huge.endpoint(), allow_private=True)
    with rx.running_receiver(body=b"x" * outbound.MAX_RESPONSE_SIZE) as big:
        assert len(outbound.fetch(big.endpoint(), allow_private=True).body) == len(big.body)


@pytest.mark.parametrize(
    "url", ["ftp://rp.example/x", "file:///etc/passwd", "https:///nohost", "https://rp.example:x/"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(outbound.FetchError):
        outbound.fetch(url, allow_private=True)
