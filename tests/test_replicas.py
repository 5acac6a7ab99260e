"""Two real ``idp serve`` replicas on one PostgreSQL database and one Redis.

A user must not notice which replica answers, a revocation on one holds on the other at
once, and a replica killed mid-burst loses nothing: every request succeeded or failed
cleanly, and what the clients were given is exactly what the database holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest
import requests
from redis import Redis
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import select

from idp import create_app
from idp.db import get_database
from idp.models import AuditEvent
from idp.models.login import LoginSession
from idp.models.oidc import OAuthToken
from idp.models.oidc import hash_secret
from tests.conftest import FAST_HASH
from tests.conftest import RunDatabase
from tests.conftest import make_user
from tests.e2e.conftest import IDP
from tests.e2e.conftest import free_port
from tests.e2e.conftest import idp_environment
from tests.e2e.conftest import wait_until_up
from tests.helpers import oidc
from tests.helpers.forms import csrf_token
from tests.helpers.redis_server import RedisServer

PASSWORD = "replicated password"
USERS = [f"user{number}@example.com" for number in range(6)]
TIMEOUT = 10


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL the replica: gunicorn's master and its workers, no chance to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@dataclass
class Deployment:
    replicas: list[Replica]
    database_url: str
    client: oidc.Client
    redis_url: str


@pytest.fixture(scope="module")
def deployment(
    postgresql_run_database: RunDatabase,
    keys_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("replicas")
    redis = RedisServer(folder)
    redis.start()
    postgresql_run_database.reset()  # this worker's database, with the schema and no rows
    database_url = postgresql_run_database.url
    shutil.copytree(keys_template, folder / "keys")
    ports = [free_port(), free_port()]
    # Behind a load balancer the replicas share one issuer, secret key, keys and stores.
    env = {
        **idp_environment(folder, ports[0]),
        "IDP_DATABASE_URL": database_url,
        "IDP_REDIS_URL": redis.url,
        "IDP_SECRET_KEY": "replicas-share-this-secret-key",
    }
    replicas: list[Replica] = []
    try:
        for port in ports:
            with (folder / f"idp-{port}.log").open("wb") as log:
                process = subprocess.Popen(
                    [IDP, "serve", "--port", str(port), "--workers", "2"],
                    env=env,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # its own process group: kill() reaches workers
                )
            replicas.append(Replica(f"http://127.0.0.1:{port}", process))
        # While they start: users and a client, in this process (an ``idp`` command each
        # would cost seconds of start-up).
        admin = create_app(
            {
                "database_url": database_url,
                "keys_dir": env["IDP_KEYS_DIR"],
                "instance_dir": env["IDP_INSTANCE_DIR"],
                "secret_key": env["IDP_SECRET_KEY"],
                **FAST_HASH,
            }
        )
        for email in USERS:
            make_user(admin, email, PASSWORD)
        client = oidc.register(admin, "Notes", scope="openid offline_access")
        get_database(admin).engine.dispose()
        for replica in replicas:
            wait_until_up(f"{replica.url}/healthz", replica.process)
        yield Deployment(replicas, database_url, client, redis.url)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.kill()  # no need to wait for a graceful stop
        redis.stop()


def log_in(browser: requests.Session, base: str, email: str) -> requests.Response:
    page = browser.get(f"{base}/login", timeout=TIMEOUT)
    form = {"csrf_token": csrf_token(page.text), "username": email, "password": PASSWORD}
    return browser.post(f"{base}/login", data=form, allow_redirects=False, timeout=TIMEOUT)


def authorize(browser: requests.Session, base: str, client: oidc.Client) -> requests.Response:
    verifier, challenge = oidc.pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid offline_access",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = browser.get(
        f"{base}/authorize", params=query, allow_redirects=False, timeout=TIMEOUT
    )
    response.verifier = verifier  # type: ignore[attr-defined]
    return response


def redeem(base: str, client: oidc.Client, code: str, verifier: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uri,
        "code_verifier": verifier,
    }
    return requests.post(f"{base}/token", data=form, auth=client.basic_auth, timeout=TIMEOUT)


def refresh(base: str, client: oidc.Client, refresh_token: str) -> requests.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return requests.post(f"{base}/token", data=form, auth=client.basic_auth, timeout=TIMEOUT)


def code_of(response: requests.Response) -> str:
    assert response.status_code == 302, response.text[:300]
    return oidc.query_of(response.headers["Location"])["code"]


def test_replicas_share_logins_and_revocations_and_lose_nothing_when_one_dies(
    deployment: Deployment,
) -> None:
    # One test, so one pair of servers per run: xdist's loadgroup does not keep a module's
    # tests together under pytest 9 (its node-id suffix is ignored).
    a_login_on_one_replica_is_used_and_revoked_on_the_other(deployment)
    a_replica_killed_mid_burst_loses_nothing(deployment)


def a_login_on_one_replica_is_used_and_revoked_on_the_other(deployment: Deployment) -> None:
    one, other = (replica.url for replica in deployment.replicas)
    client = deployment.client
    with requests.Session() as browser:
        assert log_in(browser, one, USERS[0]).status_code == 302

        answer = authorize(browser, other, client)
        tokens = redeem(one, client, code_of(answer), answer.verifier).json()  # type: ignore[attr-defined]
        refreshed = refresh(other, client, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        # Both replicas have read the session, so Redis caches it (idp/sessions/cache.py).
        for base in (one, other, one, other):
            assert browser.get(f"{base}/account/", timeout=TIMEOUT).status_code == 200
        store = Redis.from_url(deployment.redis_url)
        assert store.keys("idp:login:record:*")

        page = browser.get(f"{one}/logout", timeout=TIMEOUT)
        ended = browser.post(
            f"{one}/logout", data={"csrf_token": csrf_token(page.text)}, timeout=TIMEOUT
        )
        assert ended.status_code == 200

        # At once, on the other replica: the cookie is refused, the tokens are dead.
        assert authorize(browser, other, client).headers["Location"].startswith("/login")
        later = refresh(other, client, refreshed.json()["refresh_token"])
        assert later.status_code == 400
        assert later.json()["error"] == "invalid_grant"
        assert (
            browser.get(f"{other}/account/", allow_redirects=False, timeout=TIMEOUT).status_code
            == 302
        )
        assert not store.keys("idp:login:record:*")
        store.close()


@dataclass
class Outcomes:
    """What the burst's clients saw: responses by status, connection errors, tokens held."""

    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    logins: int = 0
    refresh_tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, response: requests.Response) -> requests.Response:
        with self.lock:
            self.statuses[response.status_code] += 1
        # A clean refusal is a spec-shaped body (JSON or the IdP's page), never a 500.
        assert response.status_code < 500 or response.status_code == 503, response.text[:300]
        return response


def journey(deployment: Deployment, number: int, outcomes: Outcomes) -> None:
    """Log in, authorize, redeem and refresh twice, hopping replicas at every step."""
    urls = [replica.url for replica in deployment.replicas]
    client = deployment.client

    def at(step: int) -> str:
        return urls[(number + step) % 2]

    try:
        with requests.Session() as browser:
            if outcomes.note(log_in(browser, at(0), USERS[number % len(USERS)])).status_code != 302:
                return
            with outcomes.lock:
                outcomes.logins += 1
            answer = outcomes.note(authorize(browser, at(1), client))
            tokens = outcomes.note(redeem(at(2), client, code_of(answer), answer.verifier))  # type: ignore[attr-defined]
            for step in (3, 4):
                if tokens.status_code != 200:
                    return
                with outcomes.lock:
                    outcomes.refresh_tokens.append(tokens.json()["refresh_token"])
                tokens = outcomes.note(refresh(at(step), client, tokens.json()["refresh_token"]))
            if tokens.status_code == 200:
                with outcomes.lock:
                    outcomes.refresh_tokens.append(tokens.json()["refresh_token"])
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        # Refused, reset, or cut mid-body by the kill: the client knows it failed.
        with outcomes.lock:
            outcomes.connection_errors += 1


def a_replica_killed_mid_burst_loses_nothing(deployment: Deployment) -> None:
    outcomes = Outcomes()
    survivor, victim = deployment.replicas
    journeys = 16
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = [pool.submit(journey, deployment, n, outcomes) for n in range(journeys // 2)]
        rest = [
            pool.submit(journey, deployment, n, outcomes) for n in range(journeys // 2, journeys)
        ]
        first[1].result()  # a few journeys are through, others in flight: kill
        victim.kill()
        for future in first + rest:
            future.result()  # an assertion in a journey (a 500) fails the test here

    assert outcomes.connection_errors > 0  # the kill did cut requests
    assert outcomes.logins > 0 and outcomes.refresh_tokens

    engine = create_engine(deployment.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(OAuthToken)).all()
            sessions = connection.scalar(select(func.count()).select_from(LoginSession))
            logins = connection.scalar(
                select(func.count()).where(AuditEvent.event == "login_success")
            )
    finally:
        engine.dispose()
    by_hash = Counter(row.refresh_token_hash for row in rows)
    # Every refresh token a client was given is in the database, once.
    assert all(by_hash[hash_secret(token)] == 1 for token in outcomes.refresh_tokens)
    assert max(by_hash.values()) == 1
    # A rotation and its new token were stored together: one child per rotated token.
    children = Counter(row.parent_id for row in rows if row.parent_id is not None)
    assert all(children[row.id] == 1 for row in rows if row.rotated_at is not None)
    assert all(children[row.id] == 0 for row in rows if row.rotated_at is None)
    # One live (unrotated) token per family: none lost, none duplicated.
    tips = Counter(row.family_id for row in rows if row.rotated_at is None)
    assert set(tips.values()) == {1}
    # Every session's login was stored with its audit record, and no more.
    assert sessions == logins >= outcomes.logins
    # The survivor honours every family's live token (the client may not hold a tip whose
    # response the kill cut: it holds that token's parent, which the database shows rotated).
    tip_hashes = {row.refresh_token_hash for row in rows if row.rotated_at is None}
    for token in outcomes.refresh_tokens:
        if hash_secret(token) in tip_hashes:
            assert refresh(survivor.url, deployment.client, token).status_code == 200
