"""Load benchmark: a real ``idp serve`` against panva's ``oidc-provider``, side by side.

Run: ``make bench`` (or ``.venv/bin/python bench/run.py [options]``; ``--help`` lists them).

It starts ``idp serve`` (its production server and defaults) on loopback with a throwaway
database, keys and secret, seeds it through the ``idp`` command line (a user with a known
password, one confidential client, a SAML SP that signs its AuthnRequests), then runs each
loop for a fixed time at a fixed concurrency, one asyncio task per simulated browser:

- ``flow``: GET /authorize with a login session cookie -> POST /token (code + PKCE, client
  secret) -> GET /userinfo with the access token; one operation is the three requests.
- ``refresh``: the refresh grant, each task presenting the token the previous answer rotated in.
- ``login``: the real login form: GET /login (CSRF token), POST /login (Argon2id, idp's defaults).
- ``discovery``: GET /.well-known/openid-configuration, then GET of its ``jwks_uri``.
- ``introspect``: POST /introspect of an access token by the client it was issued to.
- ``saml``: an HTTP-Redirect AuthnRequest signed by the SP -> the signed Response's POST form.

Unless ``--no-peer``, the same ``flow``, ``refresh`` and ``discovery`` loops run against
``oidc-provider`` (installed with npm into a temporary folder, configured by
bench/oidc_provider.mjs), alternating in each loop idp, peer, peer, idp (half the time each)
so both see the same machine, and the table gives the ratio idp / peer of operations per second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit

import aiohttp
import yarl

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOOPS = ("flow", "refresh", "login", "discovery", "introspect", "saml")
PEER_LOOPS = ("flow", "refresh", "discovery")
PEER_PACKAGE = "oidc-provider@9.13.3"
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 (the throwaway bench user's)
REDIRECT_URI = "https://rp.bench.example/callback"
SP_ENTITY_ID = "https://sp.bench.example/metadata"
SP_ACS_URL = "https://sp.bench.example/acs"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
CSRF_FIELD = re.compile(rb'name="csrf_token" value="([^"]+)"')
FORM_ACTION = re.compile(rb'<form[^>]*action="([^"]+)"')
FORM_PROMPT = re.compile(rb'name="prompt" value="([^"]+)"')


class BenchError(Exception):
    """An operation got an answer other than the one a working server gives."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server on port {port} exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (gunicorn's master and workers)."""
    pids = [pid]
    for current in pids:
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids.extend(int(child) for child in (task / "children").read_text().split())
    return pids


def reset_peak_rss(pids: list[int]) -> None:
    """Reset each process's peak RSS (VmHWM), so the next reading is this loop's peak."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss_mb(pids: list[int], field: str = "VmHWM") -> list[float]:
    """Return each process's peak RSS in MB (``field="VmRSS"``: its current RSS)."""
    peaks = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return peaks


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- the servers ---------------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    name: str
    base: str
    client_id: str
    client_secret: str
    process: subprocess.Popen[bytes] | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    loops: tuple[str, ...] = LOOPS

    @property
    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_idp(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 (our own console script)
        [str(BIN / "idp"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"idp {args[0]} {args[1] if len(args) > 1 else ''}: {result.stderr}")
    return result.stdout


def sp_key_and_metadata(folder: Path) -> tuple[Any, Path]:
    """Make the SP's key and certificate; write its metadata (AuthnRequestsSigned)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sp.bench.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    metadata = f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{SP_ENTITY_ID}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:X509Data><ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data>
    </ds:KeyInfo></md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
      Location="{SP_ACS_URL}" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""
    path = folder / "sp-metadata.xml"
    path.write_text(metadata)
    return key, path


SEED_SQL = (
    # Users, then sessions spread over them round-robin, then one token per session.
    """INSERT INTO user_account (email, subject, name, is_disabled, is_admin, created_at,
           updated_at)
       SELECT 'user' || g || '@scale.example', md5('subject' || g), 'User ' || g, false, false,
              now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
       FROM generate_series(1, %(users)s) AS g""",
    """INSERT INTO login_session (sid, token_hash, user_id, created_at, last_seen_at, expires_at,
           auth_time, amr, ip, user_agent, details)
       SELECT md5('sid' || g), encode(sha256(('login' || g)::bytea), 'hex'),
              first.id + g %% %(users)s, now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc',
              now() AT TIME ZONE 'utc' + interval '8 hours', now() AT TIME ZONE 'utc',
              '["pwd"]', '10.1.2.3', 'seeded', '{}'
       FROM generate_series(1, %(sessions)s) AS g,
            (SELECT min(id) AS id FROM user_account
             WHERE email LIKE '%%@scale.example') AS first""",
    """INSERT INTO oauth_token (jti, client_id, user_id, login_session_id, family_id, scope,
           issued_at, access_expires_at)
       SELECT md5('jti' || s.id), 'seeded-client', s.user_id, s.id, md5('family' || s.id),
              'openid', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' + interval '10 minutes'
       FROM login_session AS s WHERE s.user_agent = 'seeded'""",
    "ANALYZE",
)


def seed(database_url: str, users: int, sessions: int) -> None:
    """Fill the (PostgreSQL) database with users, sessions and tokens, server-side."""
    import psycopg

    if not database_url.startswith("postgresql"):
        raise SystemExit("--seed-users needs --db postgresql")
    started = time.perf_counter()
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in SEED_SQL:
            connection.execute(statement, {"users": users, "sessions": sessions})
    print(
        f"seeded {users:,} users, {sessions:,} sessions and tokens "
        f"in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def create_postgres_database(admin_url: str) -> str:
    import psycopg

    name = f"idp_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_idp(folder: Path, options: argparse.Namespace, database_url: str) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "IDP_ISSUER": base,
        "IDP_DATABASE_URL": database_url,
        "IDP_KEYS_DIR": str(folder / "keys"),
        "IDP_INSTANCE_DIR": str(folder / "instance"),
        "IDP_SECRET_KEY": secrets.token_urlsafe(32),
        "IDP_LOG_LEVEL": "WARNING",
    }
    env.pop("IDP_CONFIG", None)
    if options.redis_url:
        env["IDP_REDIS_URL"] = options.redis_url
    else:
        env.pop("IDP_REDIS_URL", None)
    run_idp(env, "init")
    if options.seed_users:
        seed(database_url, options.seed_users, options.seed_sessions)
    run_idp(env, "user", "add", EMAIL, "--name", "Bench User", "--password-stdin", stdin=PASSWORD)
    client = json.loads(
        run_idp(
            env, "client", "add", "Bench", "--redirect-uri", REDIRECT_URI, "--trusted", "--json"
        )
    )
    sp_key, sp_metadata = sp_key_and_metadata(folder)
    run_idp(env, "sp", "add", "--metadata", str(sp_metadata))
    command = [str(BIN / "idp"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if options.workers:
        command += ["--workers", str(options.workers)]
    # The access log stays on (production), written to a file rather than a pipe nobody reads.
    log = (folder / "idp.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)  # noqa: S603
    server = Server("idp", base, client["client_id"], client["client_secret"], process)
    server.metadata["sp_key"] = sp_key
    wait_for_port(port, process)
    return server


def start_peer(folder: Path) -> Server:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        raise SystemExit("node and npm are needed for the peer (or run with --no-peer)")
    print(f"installing {PEER_PACKAGE} into {folder} ...", file=sys.stderr, flush=True)
    (folder / "package.json").write_text('{"private": true, "type": "module"}\n')
    subprocess.run(  # noqa: S603
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", PEER_PACKAGE],
        cwd=folder,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.copy(Path(__file__).with_name("oidc_provider.mjs"), folder / "oidc_provider.mjs")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_id, client_secret = "bench", secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "OP_PORT": str(port),
        "OP_ISSUER": base,
        "OP_CLIENT_ID": client_id,
        "OP_CLIENT_SECRET": client_secret,
        "OP_REDIRECT_URI": REDIRECT_URI,
    }
    log = (folder / "oidc-provider.log").open("wb")
    process = subprocess.Popen(  # noqa: S603
        [node, "oidc_provider.mjs"], cwd=folder, env=env, stdout=log, stderr=log
    )
    wait_for_port(port, process)
    return Server("oidc-provider", base, client_id, client_secret, process, loops=PEER_LOOPS)


# --- one simulated browser (and its relying party) -----------------------------------------


class Browser:
    """One task's HTTP client, its cookies (a login session) and its tokens."""

    def __init__(self, server: Server, connector: aiohttp.BaseConnector) -> None:
        self.server = server
        self.http = aiohttp.ClientSession(
            connector=connector,
            connector_owner=False,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies for 127.0.0.1
        )
        self.auth = {
            "Authorization": aiohttp.encode_basic_auth(server.client_id, server.client_secret)
        }
        self.refresh_token = ""
        self.access_token = ""

    @property
    def endpoints(self) -> dict[str, Any]:
        return self.server.metadata["discovery"]

    async def close(self) -> None:
        await self.http.close()

    async def get_text(self, url: str | yarl.URL, expect: int = 200, **options: Any) -> bytes:
        async with self.http.get(url, allow_redirects=False, **options) as response:
            body = await response.read()
            if response.status != expect:
                raise BenchError(f"GET {response.url.path}: {response.status} {body[-600:]!r}")
            return body

    async def login_form(self) -> None:
        """Log in through idp's form: GET /login for the CSRF token, POST the password."""
        page = await self.get_text(self.server.base + "/login")
        match = CSRF_FIELD.search(page)
        if not match:
            raise BenchError("no CSRF token on /login")
        form = {"username": EMAIL, "password": PASSWORD, "csrf_token": match.group(1).decode()}
        async with self.http.post(
            self.server.base + "/login", data=form, allow_redirects=False
        ) as response:
            await response.read()
            if response.status != 302:
                raise BenchError(f"POST /login: {response.status}")

    async def authorize(self, scope: str, challenge: str, **extra: str) -> str:
        """Run /authorize with this browser's session; answer interactions; return the code."""
        query = {
            "response_type": "code",
            "client_id": self.server.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        url = f"{self.endpoints['authorization_endpoint']}?{urlencode(query)}"
        method, data = "GET", None
        for _ in range(10):
            async with self.http.request(method, url, data=data, allow_redirects=False) as answer:
                body = await answer.read()
                location = answer.headers.get("Location", "")
                status = answer.status
            if status in (302, 303) and location.startswith(REDIRECT_URI):
                params = parse_qs(urlsplit(location).query)
                if "code" not in params:
                    raise BenchError(f"authorize: {params.get('error')}")
                return params["code"][0]
            if status in (302, 303):
                url, method, data = self.absolute(location), "GET", None
            elif status == 200 and (prompt := FORM_PROMPT.search(body)):
                # oidc-provider's own login and consent pages (a login once per browser).
                action = FORM_ACTION.search(body)
                if not action:
                    raise BenchError("no form on the interaction page")
                url, method = self.absolute(action.group(1).decode()), "POST"
                data = {"prompt": prompt.group(1).decode(), "login": "bench", "password": "x"}
            else:
                raise BenchError(f"authorize: {status}")
        raise BenchError("authorize: too many redirects")

    def absolute(self, location: str) -> str:
        return location if "://" in location else self.server.base + location

    async def token(self, form: dict[str, str]) -> dict[str, Any]:
        async with self.http.post(
            self.endpoints["token_endpoint"], data=form, headers=self.auth
        ) as response:
            body = await response.read()
            if response.status != 200:
                raise BenchError(f"token: {response.status} {body[:200]!r}")
            answer: dict[str, Any] = json.loads(body)
            return answer

    async def code_flow(self, scope: str, **extra: str) -> dict[str, Any]:
        verifier, challenge = pkce_pair()
        code = await self.authorize(scope, challenge, **extra)
        return await self.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            }
        )

    async def set_up(self) -> None:
        """Log in once (idp's form, or oidc-provider's pages) and take a refresh token."""
        extra = {}
        if self.server.name == "idp":
            await self.login_form()
        else:
            # oidc-provider drops offline_access unless consent is asked (OIDC Core §11).
            extra["prompt"] = "consent"
        tokens = await self.code_flow("openid profile email offline_access", **extra)
        self.refresh_token = tokens["refresh_token"]
        self.access_token = tokens["access_token"]

    # The loops: one call is one operation.

    async def flow(self) -> None:
        tokens = await self.code_flow("openid profile email")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        claims = json.loads(
            await self.get_text(self.endpoints["userinfo_endpoint"], headers=headers)
        )
        if "sub" not in claims:
            raise BenchError("userinfo without sub")

    async def refresh(self) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        try:
            tokens = await self.token(form)
        except BenchError:
            await self.set_up()  # a broken chain: start a new one (the error still counts)
            raise
        self.refresh_token = tokens["refresh_token"]

    async def login(self) -> None:
        self.http.cookie_jar.clear()  # a new browser each time
        await self.login_form()

    async def discovery(self) -> None:
        base = self.server.base
        metadata = json.loads(await self.get_text(base + "/.well-known/openid-configuration"))
        await self.get_text(metadata["jwks_uri"])

    async def introspect(self) -> None:
        form = {"token": self.access_token}
        async with self.http.post(
            self.endpoints["introspection_endpoint"], data=form, headers=self.auth
        ) as response:
            body = await response.read()
            if response.status != 200 or not json.loads(body).get("active"):
                raise BenchError(f"introspect: {response.status}")

    async def saml(self) -> None:
        query = signed_authn_request(self.server.base, self.server.metadata["sp_key"])
        # As sent, byte for byte: the signature covers the encoded query.
        page = await self.get_text(yarl.URL(f"{self.server.base}/saml/sso?{query}", encoded=True))
        if b'name="SAMLResponse"' not in page:
            raise BenchError("saml: no SAMLResponse form")


def signed_authn_request(base: str, key: Any) -> str:
    """Return the HTTP-Redirect query of a fresh AuthnRequest signed with RSA-SHA256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    instant = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = (
        '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_{secrets.token_hex(16)}" Version="2.0" IssueInstant="{instant}" '
        f'Destination="{base}/saml/sso" AssertionConsumerServiceURL="{SP_ACS_URL}" '
        'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
        f"<saml:Issuer>{SP_ENTITY_ID}</saml:Issuer>"
        '<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" '
        'AllowCreate="true"/></samlp:AuthnRequest>'
    )
    compressor = zlib.compressobj(wbits=-15)
    deflated = compressor.compress(xml.encode()) + compressor.flush()
    signed = (
        f"SAMLRequest={quote_plus(base64.b64encode(deflated).decode())}"
        f"&RelayState=bench&SigAlg={quote_plus(RSA_SHA256)}"
    )
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signed}&Signature={quote_plus(base64.b64encode(signature).decode())}"


# --- measuring -----------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    peak_rss: list[float] = dataclasses.field(default_factory=list)
    first_error: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def run_phase(
    browsers: list[Browser], loop: str, seconds: float, result: Result | None
) -> None:
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker(browser: Browser) -> None:
        operation: Callable[[], Awaitable[None]] = getattr(browser, loop)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                await operation()
            except (BenchError, aiohttp.ClientError, KeyError, ValueError) as error:
                if result is not None:
                    result.errors += 1
                    result.first_error = result.first_error or f"{type(error).__name__}: {error}"
                await asyncio.sleep(0.01)
                continue
            if result is not None:
                result.latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(browser) for browser in browsers))
    if result is not None:
        result.seconds += time.perf_counter() - started


async def connect(
    server: Server, concurrency: int, sessions: dict[str, tuple[list[Browser], Any]]
) -> None:
    """Open ``concurrency`` browsers on ``server`` (kept in ``sessions``), each logged in."""
    connector = aiohttp.TCPConnector(limit=0)
    browsers = [Browser(server, connector) for _ in range(concurrency)]
    sessions[server.name] = (browsers, connector)
    server.metadata["discovery"] = json.loads(
        await browsers[0].get_text(server.base + "/.well-known/openid-configuration")
    )
    await asyncio.gather(*(browser.set_up() for browser in browsers))


def schedule(servers: list[Server], duration: float) -> Iterator[tuple[Server, float]]:
    """Yield idp, peer, peer, idp (half the time each): drift in machine load hits both."""
    if len(servers) == 1:
        yield servers[0], duration
        return
    ours, theirs = servers
    for server in (ours, theirs, theirs, ours):
        yield server, duration / 2


async def measure(
    servers: list[Server], loops: list[str], options: argparse.Namespace
) -> dict[tuple[str, str], Result]:
    results: dict[tuple[str, str], Result] = {}
    sessions: dict[str, tuple[list[Browser], Any]] = {}
    try:
        for server in servers:
            await connect(server, options.concurrency, sessions)
            idle = format_rss(peak_rss_mb(server.pids, "VmRSS"))
            print(f"  {server.name} idle after the log-ins: {idle}", file=sys.stderr, flush=True)
        for loop in loops:
            present = [server for server in servers if loop in server.loops]
            for server in present:
                results[(loop, server.name)] = Result()
                browsers, _ = sessions[server.name]
                if options.warmup:
                    await run_phase(browsers, loop, options.warmup, None)
                reset_peak_rss(server.pids)
            for server, seconds in schedule(present, options.duration):
                browsers, _ = sessions[server.name]
                await run_phase(browsers, loop, seconds, results[(loop, server.name)])
            for server in present:
                results[(loop, server.name)].peak_rss = peak_rss_mb(server.pids)
            print_progress(loop, present, results)
    finally:
        for browsers, connector in sessions.values():
            for browser in browsers:
                await browser.close()
            await connector.close()
    return results


def print_progress(
    loop: str, servers: list[Server], results: dict[tuple[str, str], Result]
) -> None:
    for server in servers:
        result = results[(loop, server.name)]
        note = f", first error: {result.first_error}" if result.errors else ""
        print(f"  {loop} on {server.name}: {result.rate:.1f}/s{note}", file=sys.stderr, flush=True)


def format_rss(peaks: list[float]) -> str:
    if not peaks:
        return "-"
    if len(peaks) == 1:
        return f"{peaks[0]:.0f} MB"
    # gunicorn: the master first, then its workers.
    return f"{max(peaks[1:]):.0f} MB x {len(peaks) - 1} workers (master {peaks[0]:.0f} MB)"


def table(results: dict[tuple[str, str], Result], loops: list[str], servers: list[Server]) -> str:
    lines = [
        "| loop | server | ops/s | p50 ms | p95 ms | p99 ms | errors | peak RSS per process |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for loop in loops:
        for server in servers:
            result = results.get((loop, server.name))
            if result is None:
                continue
            lines.append(
                f"| {loop} | {server.name} | {result.rate:,.1f} | {result.percentile(0.50):.1f} "
                f"| {result.percentile(0.95):.1f} | {result.percentile(0.99):.1f} "
                f"| {result.errors} | {format_rss(result.peak_rss)} |"
            )
    if len(servers) > 1:
        lines += ["", "| loop | ops/s idp / oidc-provider | p99 idp / oidc-provider |"]
        lines.append("| --- | ---: | ---: |")
        ours, theirs = (server.name for server in servers)
        for loop in loops:
            if (loop, theirs) in results:
                a, b = results[(loop, ours)], results[(loop, theirs)]
                rate = a.rate / b.rate if b.rate else float("nan")
                p99 = a.percentile(0.99) / b.percentile(0.99) if b.latencies else float("nan")
                lines.append(f"| {loop} | {rate:.2f} | {p99:.2f} |")
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load benchmark of idp serve (and oidc-provider).",
        epilog="Example: make bench BENCH_ARGS='--db postgresql --duration 30'",
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds per loop and server")
    parser.add_argument("--concurrency", type=int, default=8, help="simultaneous browsers")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    parser.add_argument("--loops", default=",".join(LOOPS), help="comma-separated subset")
    parser.add_argument("--no-peer", action="store_true", help="skip oidc-provider")
    parser.add_argument("--workers", type=int, help="idp serve --workers (default: its own)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="where the throwaway database is created (--db postgresql)",
    )
    parser.add_argument(
        "--redis-url",
        help="IDP_REDIS_URL (default with --db postgresql: redis://127.0.0.1:6379/14)",
    )
    parser.add_argument("--no-redis", action="store_true", help="PostgreSQL without Redis")
    parser.add_argument("--seed-users", type=int, default=0, help="seed users (PostgreSQL)")
    parser.add_argument(
        "--seed-sessions", type=int, default=0, help="seed sessions, one token each"
    )
    parser.add_argument(
        "--fail-on-error", action="store_true", help="exit 1 if any operation failed (CI)"
    )
    options = parser.parse_args(argv)
    unknown = set(options.loops.split(",")) - set(LOOPS)
    if unknown:
        parser.error(f"unknown loops: {', '.join(sorted(unknown))}")
    if options.db == "postgresql" and not options.redis_url and not options.no_redis:
        options.redis_url = "redis://127.0.0.1:6379/14"
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_arguments(argv)
    loops = [loop for loop in LOOPS if loop in options.loops.split(",")]
    servers: list[Server] = []
    database = None
    with tempfile.TemporaryDirectory(prefix="idp-bench-") as tmp:
        folder = Path(tmp)
        try:
            if options.db == "postgresql":
                database = create_postgres_database(options.postgres_admin_url)
                url = options.postgres_admin_url.rsplit("/", 1)[0] + f"/{database}"
                database_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
            else:
                database_url = f"sqlite:///{folder}/idp.sqlite3"
            servers.append(start_idp(folder, options, database_url))
            if not options.no_peer and any(loop in PEER_LOOPS for loop in loops):
                peer_folder = folder / "peer"
                peer_folder.mkdir()
                servers.append(start_peer(peer_folder))
            results = asyncio.run(measure(servers, loops, options))
        finally:
            for server in servers:
                server.stop()
            if database:
                drop_postgres_database(options.postgres_admin_url, database)
    workers = options.workers or "default"
    print(
        f"\n{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs; "
        f"idp on {options.db}{' + Redis' if options.redis_url else ''}, workers: {workers}; "
        f"{options.duration:g} s per loop and server, concurrency {options.concurrency}\n"
    )
    print(table(results, loops, servers))
    failed = sum(result.errors for result in results.values())
    empty = [key for key, result in results.items() if not result.latencies]
    return 1 if empty or (failed and options.fail_on_error) else 0


if __name__ == "__main__":
    sys.exit(main())
