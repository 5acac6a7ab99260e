"""Fixtures: an app per test on SQLite and PostgreSQL, real HTTP through Flask's test client."""

from __future__ import annotations

import gc
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

import coverage
import pytest
from _pytest.nodeid import NodeId
from flask import Flask
from flask.testing import FlaskClient
from jinja2.bccache import Bucket
from jinja2.bccache import BytecodeCache
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.routing import Rule

import idp.models  # noqa: F401 (every table in Base.metadata, for the schema template)
from idp import create_app
from idp.db import Base
from idp.db import build_engine
from idp.db import get_database
from idp.keys.store import KeyStore
from tests.helpers.forms import csrf_token

BACKENDS = ("sqlite", "postgresql")
POSTGRES_ADMIN_URL = os.environ.get(
    "IDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Set by .ci/run: a test that would be skipped for a missing service fails instead.
REQUIRE_ALL = os.environ.get("IDP_TEST_REQUIRE_ALL") == "1"

# Cheap Argon2 parameters: the tests exercise the logic, bench/ measures the cost.
FAST_HASH = {
    "password_hash_time_cost": 1,
    "password_hash_memory_cost": 1024,
    "password_hash_parallelism": 1,
}


_compile_builder = Rule._compile_builder
_builders: dict[tuple[Any, ...], Callable[..., tuple[str, str]]] = {}


def _shared_builder(rule: Rule, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
    """Compile each URL rule's builder once per run instead of once per test app.

    Werkzeug writes and compiles a Python function per rule when an app registers it: three
    quarters of ``create_app``, called once per test. The function depends only on the rule's
    parts and defaults and reads everything else from the rule it is bound to, so apps can
    share it. https://github.com/pallets/werkzeug/blob/3.1.9/src/werkzeug/routing/rules.py#L739
    """
    defaults = rule.defaults or {}
    constants = tuple(
        (name, rule._converters[name].to_url(value))
        for name, value in defaults.items()
        if name in rule._converters
    )
    key = (rule.rule, tuple(rule._trace), tuple(defaults), constants, append_unknown)
    builder = _builders.get(key)
    if builder is None:
        builder = _builders[key] = _compile_builder(rule, append_unknown)
    return builder


Rule._compile_builder = _shared_builder  # type: ignore[method-assign]

_compile_rule = Rule.compile
_static_rules: dict[tuple[Any, ...], tuple[list[Any], list[tuple[bool, str]]]] = {}


def _shared_compile(rule: Rule) -> None:
    """Parse each URL rule without variables once per run instead of once per test app.

    Parsing (``_parse_rule``, a regular expression walk) was a third of what remained of
    ``create_app``. A rule without variables parses to the same parts and trace in every
    map; a rule with some gets converters bound to its map, so it is parsed as usual.
    https://github.com/pallets/werkzeug/blob/3.1.9/src/werkzeug/routing/rules.py#L698
    """
    assert rule.map is not None
    key = (rule.rule, rule.subdomain, rule.host, rule.merge_slashes, rule.map.host_matching)
    parsed = _static_rules.get(key)
    if parsed is None:
        _compile_rule(rule)
        if not rule._converters:
            _static_rules[key] = (list(rule._parts), list(rule._trace))
        return
    rule._parts, rule._trace, rule._converters = list(parsed[0]), list(parsed[1]), {}
    rule._build = _shared_builder(rule, False).__get__(rule, None)
    rule._build_unknown = _shared_builder(rule, True).__get__(rule, None)


Rule.compile = _shared_compile  # type: ignore[method-assign]


def require_service(available: bool, reason: str) -> None:
    """Skip (or, under IDP_TEST_REQUIRE_ALL=1, fail) when a service is missing."""
    if available:
        return
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (IDP_TEST_REQUIRE_ALL=1 forbids skipping)")
    pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("all", *BACKENDS),
        default="all",
        help="database backend(s) to run the app tests on (default: all)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` marks group tests on one worker under ``--dist loadgroup``.

    pytest-xdist 3.8 appends ``@group`` to ``item._nodeid``, which pytest 9.2 no longer reads
    (``nodeid`` comes from ``item._id``), so the mark alone groups nothing
    (xdist/remote.py, ``WorkerInteractor.pytest_collection_modifyitems``): set it here.
    """
    if not config.getoption("loadgroup", default=False):
        return
    for item in items:
        groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")  # noqa: SLF001


def pytest_collection_finish(session: pytest.Session) -> None:
    """Leave what every test shares (modules, collected items) out of the garbage collector's way.

    Each full collection walks every tracked object. Frozen, the ~300,000 that import and
    collection made stay out of those walks for the rest of the run (and of the shutdown's,
    which held up each xdist worker's exit): an app test ran about 12 % faster.
    """
    gc.collect()
    gc.freeze()


def _second_run(item: pytest.Item) -> bool:
    """Say whether this is the PostgreSQL run of an app test that also runs on SQLite."""
    params = getattr(item, "callspec", None)
    if params is None or params.params.get("db_backend") != "postgresql":
        return False
    return "sqlite" in run_backends(item.config, item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Measure coverage on the SQLite run of each app test, not again on its PostgreSQL run.

    The second run checks the same code on the other database. Traced as well, it took 1.4
    times the CPU (Python 3.11's tracer), a fifth of the whole run, to add 7 lines and 3
    branches to the report (the PostgreSQL share of the fuzzed examples, a dialect branch):
    those now show as missed. Tests of PostgreSQL-only features are still measured.
    """
    cov = coverage.Coverage.current() if _second_run(item) else None
    if cov is None:
        yield
        return
    cov.stop()
    # Under xdist this thread's tracer stays installed after stop() (sys.gettrace() is still
    # coverage's CTracer): traced code would stay as slow as before.
    sys.settrace(None)
    try:
        yield
    finally:
        cov.start()


def run_backends(config: pytest.Config, node: pytest.Item) -> tuple[str, ...]:
    """The databases an app test runs on in this run: ``--db``, narrowed by its mark."""
    chosen = config.getoption("--db")
    backends = BACKENDS if chosen == "all" else (chosen,)
    # @pytest.mark.backends("postgresql"): a test of a feature one database lacks.
    only = node.get_closest_marker("backends")
    if only is not None:
        backends = tuple(backend for backend in backends if backend in only.args)
    return backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "db_backend" in metafunc.fixturenames:
        backends = run_backends(metafunc.config, metafunc.definition)
        metafunc.parametrize("db_backend", backends, scope="session")


@dataclass
class Clock:
    """A settable clock injected as ``app.extensions["idp.clock"]``."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _postgres_reachable() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """Return the admin URL of a reachable PostgreSQL server (skip/fail if none)."""
    require_service(
        _postgres_reachable(),
        f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}",
    )
    return POSTGRES_ADMIN_URL


def create_postgres_database(admin_url: str, template: str | None = None) -> str:
    """Create a throwaway database (a copy of ``template`` if given) and return its URL."""
    name = f"idp_test_{secrets.token_hex(6)}"
    copy = f' TEMPLATE "{template}"' if template else ""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def empty_tables_sql(engine: Engine) -> str:
    """Return one script that empties every table and restarts every sequence.

    On tables of a few rows, DELETE and setval take ~3 ms where TRUNCATE takes ~50 ms
    (it replaces each table's files) and CREATE DATABASE ... TEMPLATE ~50 ms plus a drop.
    """
    tables = reversed(Base.metadata.sorted_tables)
    deletes = [f'DELETE FROM "{table.name}";' for table in tables]  # noqa: S608 (our tables)
    with engine.connect() as connection:
        sequences = connection.scalars(
            text("SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences")
        ).all()
    restarts = [f"SELECT setval('{sequence}', 1, false);" for sequence in sequences]
    return "\n".join(deletes + restarts)


@dataclass
class RunDatabase:
    """The run's (an xdist worker's) database of one backend, emptied before each test.

    Its engine is shared by every test's app: SQLAlchemy caches compiled SQL per engine, and
    compiling each statement again for a new engine per test cost a quarter of an app test.
    """

    url: str
    engine: Engine
    reset: Callable[[], None]


@pytest.fixture(scope="session")
def run_engines() -> dict[str, Engine]:
    """The run databases' engines by URL (see ``app``)."""
    return {}


@pytest.fixture(scope="session")
def postgresql_run_database(
    postgres_admin_url: str, run_engines: dict[str, Engine]
) -> Iterator[RunDatabase]:
    """One database per run (per xdist worker), with the schema."""
    url = create_postgres_database(postgres_admin_url)
    name = make_url(url).database
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        # Throwaway data: a commit need not wait for the disk (the machine is shared).
        connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    engine = build_engine(url)
    Base.metadata.create_all(engine)
    empty_tables = empty_tables_sql(engine)

    def reset() -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql(empty_tables)

    run_engines[url] = engine
    yield RunDatabase(url, engine, reset)
    engine.dispose()
    drop_postgres_database(postgres_admin_url, url)


@pytest.fixture(scope="session")
def sqlite_run_database(
    tmp_path_factory: pytest.TempPathFactory, run_engines: dict[str, Engine]
) -> Iterator[RunDatabase]:
    """One SQLite file per run (per xdist worker), replaced by a copy of the schema per test."""
    folder = tmp_path_factory.mktemp("sqlite")
    template = folder / "schema.sqlite3"
    engine = create_engine(f"sqlite:///{template}")
    Base.metadata.create_all(engine)
    engine.dispose()
    path = folder / "idp.sqlite3"
    url = f"sqlite:///{path}"
    engine = build_engine(url)

    def reset() -> None:
        engine.dispose()  # no pooled connection to the previous test's file
        # The previous test's write-ahead log goes too: a connection it left open (a
        # background thread's) keeps the log, and SQLite would replay it onto the new file.
        for journal in ("-wal", "-shm", "-journal", "-lock"):
            path.with_name(path.name + journal).unlink(missing_ok=True)
        # A new file (inode) under the same name: copying a prebuilt schema takes ~0.3 ms.
        shutil.copyfile(template, folder / "next.sqlite3")
        os.replace(folder / "next.sqlite3", path)

    run_engines[url] = engine
    yield RunDatabase(url, engine, reset)
    engine.dispose()


@pytest.fixture
def database_url(db_backend: str, request: pytest.FixtureRequest) -> str:
    """The URL of a database with the schema and no rows, for this test alone."""
    database: RunDatabase = request.getfixturevalue(f"{db_backend}_run_database")
    database.reset()
    return database.url


@pytest.fixture(scope="session")
def keys_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys generated once per run; each test gets a copy it may rotate."""
    path = tmp_path_factory.mktemp("keys-template")
    store = KeyStore(path, activation_delay=timedelta(minutes=10), retention=timedelta(days=1))
    store.ensure_keys(datetime.now(UTC) - timedelta(days=1))
    return path


@pytest.fixture
def keys_dir(keys_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    shutil.copytree(keys_template, path)
    return path


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """The create_app mapping of a test app; tests may change it before using ``app``."""
    return {
        "issuer": "http://idp.test",
        "database_url": database_url,
        "keys_dir": str(keys_dir),
        "instance_dir": str(tmp_path / "instance"),
        "secret_key": "test-secret-key-not-for-production",
        **FAST_HASH,
        "TESTING": True,
    }


@pytest.fixture
def clock() -> Clock:
    return Clock()


def reset_schema(app: Flask) -> None:
    """Give the test an empty schema: create it on SQLite, truncate it on PostgreSQL.

    ``database_url`` already is one; this is for an app built on another URL.
    """
    engine = get_database(app).engine
    if engine.dialect.name == "postgresql":
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    else:
        Base.metadata.create_all(engine)


class SharedBytecodeCache(BytecodeCache):
    """Compiled templates shared by the run's apps (Jinja checks each template's checksum)."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


@pytest.fixture(scope="session")
def template_cache() -> SharedBytecodeCache:
    return SharedBytecodeCache()


@pytest.fixture
def app(
    settings: dict[str, Any],
    clock: Clock,
    run_engines: dict[str, Engine],
    template_cache: SharedBytecodeCache,
) -> Iterator[Flask]:
    app = create_app(settings)
    app.extensions["idp.clock"] = clock
    app.jinja_env.bytecode_cache = template_cache  # each app would compile each template again
    database = get_database(app)
    shared = run_engines.get(settings["database_url"])
    if shared is not None:  # the run database's engine, with its compiled SQL (RunDatabase)
        database.engine.dispose()
        database.engine = shared
        database.sessionmaker.configure(bind=shared)
    yield app
    if shared is None:
        database.engine.dispose()


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class TestUser:
    __test__ = False  # a fixture value, not a test class

    id: int
    email: str
    password: str
    name: str


def make_user(app: Flask, email: str, password: str, **options: Any) -> TestUser:
    from idp.users.service import add_user

    with app.app_context():
        user = add_user(
            email, name=options.pop("name", "Alice Liddell"), password=password, **options
        )
        return TestUser(user.id, user.email, password, user.name)


@pytest.fixture
def user(app: Flask) -> TestUser:
    return make_user(app, "alice@example.com", "correct horse battery staple")


class AuthActions:
    """Log in and out through the real forms (flaskr's AuthActions)."""

    def __init__(self, http: FlaskClient) -> None:
        self.http = http

    def login(self, username: str, password: str, next_url: str | None = None) -> Any:
        page = self.http.get("/login", query_string={"next": next_url} if next_url else None)
        form = {"csrf_token": csrf_token(page.data), "username": username, "password": password}
        if next_url:
            form["next"] = next_url
        return self.http.post("/login", data=form)

    def logout(self) -> Any:
        page = self.http.get("/logout")
        return self.http.post("/logout", data={"csrf_token": csrf_token(page.data)})


@pytest.fixture
def auth(http: FlaskClient) -> AuthActions:
    return AuthActions(http)


@pytest.fixture
def logged_in(auth: AuthActions, user: TestUser) -> TestUser:
    response = auth.login(user.email, user.password)
    assert response.status_code == 302, response.data
    return user


def worker_redis_url(url: str) -> str:
    """Give each xdist worker its own Redis database (15, 14, ...): counters stay apart."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    parts = urlsplit(url)
    number = (int(parts.path.strip("/") or 0) - int(worker.removeprefix("gw"))) % 16
    return urlunsplit(parts._replace(path=f"/{number}"))


@pytest.fixture
def redis_url() -> str:
    import redis

    url = worker_redis_url(REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        # This worker's own database, emptied: no rate-limit counter, replay entry or cached
        # session of an earlier test (a 429 from another test's failures) is left over.
        client.flushdb()
        client.close()
        available = True
    except redis.RedisError:
        available = False
    require_service(available, f"Redis not reachable at {url}")
    return url


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A Redis of this test's own (``RedisServer``), which it may stop and start again."""
    from tests.helpers.redis_server import RedisServer

    require_service(shutil.which("redis-server") is not None, "redis-server not installed")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
