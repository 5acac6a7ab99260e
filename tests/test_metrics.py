"""``/metrics``: Prometheus text that moves by exactly what a flow did, for the operator only."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AuthActions
from tests.conftest import TestUser
from tests.helpers import oidc
from tests.helpers import saml

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: FlaskClient, **options: Any) -> Samples:
    """Scrape ``/metrics`` and parse it with the Prometheus text parser."""
    response = http.get("/metrics", **options)
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The counters that changed (request durations aside: every request moves them)."""
    return {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0].endswith("_total") and after[key] != before.get(key, 0.0)
    }


def test_one_flow_moves_each_counter_by_exactly_its_events(
    app: Flask, http: FlaskClient, auth: AuthActions, user: TestUser
) -> None:
    before = scrape(http)
    assert value(before, "idp_active_sessions") == 0

    assert auth.login(user.email, "wrong password").status_code == 401
    assert auth.login(user.email, user.password).status_code == 302
    after_login = scrape(http)
    assert moved(before, after_login) == {
        ("idp_logins_total", (("result", "failure"),)): 1,
        ("idp_logins_total", (("result", "success"),)): 1,
    }
    assert value(after_login, "idp_active_sessions") == 1

    client = oidc.register(app)
    code = oidc.get_code(http, client, scope="openid offline_access", nonce="n")
    tokens = oidc.exchange(http, client, code).get_json()
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=client.basic_auth,
    )
    assert refreshed.status_code == 200, refreshed.data
    replayed = oidc.exchange(http, client, code)  # refused: counts nothing
    assert replayed.status_code == 400
    sp = saml.sp_settings(http)
    saml.register(app, sp)
    response, request_id = saml.sso(http, sp)
    assert saml.process_response(sp, saml.read_form(response), request_id).is_authenticated()
    after_tokens = scrape(http)
    assert moved(after_login, after_tokens) == {
        ("idp_tokens_issued_total", (("grant_type", "authorization_code"),)): 1,
        ("idp_tokens_issued_total", (("grant_type", "refresh_token"),)): 1,
        ("idp_saml_assertions_total", ()): 1,
    }

    assert auth.logout().status_code in (200, 302, 303)
    after_logout = scrape(http)
    assert moved(after_tokens, after_logout) == {
        ("idp_logouts_total", (("reason", "logout"),)): 1,
    }
    assert value(after_logout, "idp_active_sessions") == 0


def test_request_durations_are_labelled_by_endpoint_never_by_path(http: FlaskClient) -> None:
    for _ in range(2):
        assert http.get("/healthz").status_code == 200
    assert http.get(f"/no-such-page/{secrets.token_hex(8)}").status_code == 404
    samples = scrape(http)
    count = "idp_http_request_duration_seconds_count"
    assert value(samples, count, endpoint="ops.healthz") == 2
    assert value(samples, count, endpoint="none") == 1  # every unknown path shares one label
    endpoints = {dict(labels).get("endpoint") for name, labels in samples if name == count}
    assert not any(endpoint and "/" in endpoint for endpoint in endpoints), endpoints


@pytest.mark.parametrize(
    ("environ", "headers"),
    [
        ({"REMOTE_ADDR": "203.0.113.9"}, {}),  # a stranger
        ({"REMOTE_ADDR": "127.0.0.1"}, {"X-Forwarded-For": "127.0.0.1"}),  # via a local proxy
        ({"REMOTE_ADDR": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}),
    ],
)
def test_metrics_are_refused_outside_the_allowed_networks(
    http: FlaskClient, environ: dict[str, str], headers: dict[str, str]
) -> None:
    response = http.get("/metrics", environ_base=environ, headers=headers)
    assert response.status_code == 403
    assert response.get_json() == {"error": "forbidden"}
    assert b"idp_" not in response.data


def test_metrics_allowed_networks_admit_the_scraper(
    settings: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    settings["metrics_allowed_networks"] = "10.0.0.0/8 203.0.113.0/24"
    settings["trusted_proxies"] = 1
    http: FlaskClient = request.getfixturevalue("http")
    samples = scrape(http, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert value(samples, "idp_active_sessions") == 0
    # Loopback is no longer listed; a forged X-Forwarded-For does not make a stranger local.
    assert http.get("/metrics").status_code == 403
    stranger = {"REMOTE_ADDR": "198.51.100.1"}
    forged = {"X-Forwarded-For": "203.0.113.9"}
    assert http.get("/metrics", environ_base=stranger, headers=forged).status_code == 403
