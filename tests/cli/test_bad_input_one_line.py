"""Bad input to the ``idp`` console script: one line on stderr, exit 1, nothing written.

``idp.cli.main`` runs in this process (``run_idp``) but for ``serve``, which runs for real.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy.engine import make_url

from idp.models import OAuthClient
from idp.models import User
from tests.cli.test_console_script import assert_one_line_error
from tests.cli.test_console_script import free_port
from tests.cli.test_console_script import idp
from tests.conftest import create_postgres_database
from tests.conftest import drop_postgres_database
from tests.helpers.cli import console as run_idp
from tests.helpers.cli import console_environment

REDIRECT = "https://rp.example.com/callback"
NOT_UTF8 = b"\xff\xfe not UTF-8 at all, and long enough to be a secret\n"


@contextmanager
def database(
    db_backend: str, folder: Path, request: pytest.FixtureRequest, template: str | None = None
) -> Iterator[str]:
    """The URL of a database of ``db_backend`` (a copy of PostgreSQL ``template`` if given)."""
    if db_backend == "sqlite":
        yield f"sqlite:///{folder / 'idp.sqlite3'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    url = create_postgres_database(admin_url, template)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture
def env(
    db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The console script's environment, on an empty database of ``db_backend``."""
    with database(db_backend, tmp_path, request) as url:
        yield {**console_environment(tmp_path), "IDP_DATABASE_URL": url}


@pytest.fixture(scope="module")
def initialised_template(
    db_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, str]]:
    """What ``idp init`` writes, once per module and backend (each ``idp`` start costs ~1 s)."""
    folder = tmp_path_factory.mktemp("initialised")
    with database(db_backend, folder, request) as url:
        result = run_idp(
            "init", env={**console_environment(folder), "IDP_DATABASE_URL": url}, cwd=folder
        )
        assert result.returncode == 0, result.stderr
        yield folder, make_url(url).database or ""


@pytest.fixture
def initialised(
    initialised_template: tuple[Path, str],
    db_backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[dict[str, str]]:
    """The environment of an install on which ``idp init`` ran (a copy of the template)."""
    folder, template = initialised_template
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    with database(db_backend, tmp_path, request, template) as url:
        yield {**console_environment(tmp_path), "IDP_DATABASE_URL": url}


def database_tables(url: str) -> set[str]:
    """Return the tables of the database at ``url`` (none when its SQLite file is missing)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return set()
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def stored(model: Any, env: dict[str, str]) -> int:
    """Return how many rows ``model``'s table holds, read from the database directly.

    An ``idp ... list`` would cost a console script start (~1.5 s of CPU) per check.
    """
    engine = create_engine(env["IDP_DATABASE_URL"])
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(model)) or 0
    finally:
        engine.dispose()


def test_password_that_is_not_utf8(initialised: dict[str, str], tmp_path: Path) -> None:
    result = run_idp(
        "user",
        "add",
        "carol@example.com",
        "--name",
        "Carol",
        "--password-stdin",
        env=initialised,
        cwd=tmp_path,
        input=NOT_UTF8,
    )
    line = assert_one_line_error(result, 1)
    assert "password" in line and "UTF-8" in line
    assert stored(User, initialised) == 0


def test_client_secret_that_is_not_utf8(initialised: dict[str, str], tmp_path: Path) -> None:
    result = run_idp(
        "client",
        "add",
        "Photos",
        "--redirect-uri",
        REDIRECT,
        "--secret-stdin",
        env=initialised,
        cwd=tmp_path,
        input=NOT_UTF8,
    )
    line = assert_one_line_error(result, 1)
    assert "secret" in line and "UTF-8" in line
    assert stored(OAuthClient, initialised) == 0


@pytest.mark.parametrize(
    "key",
    [
        {"kty": "RSA"},
        {"kty": "EC", "crv": "P-256"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0LXNoYXJlZC13aXRoLXRoZS1pZHA"},
        {"kty": "nonsense"},
    ],
    ids=["rsa-without-n-e", "ec-without-x-y", "rsa-garbage", "shared-secret", "unknown-kty"],
)
def test_jwks_that_can_never_verify(
    initialised: dict[str, str], tmp_path: Path, key: dict[str, str]
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key]}))
    result = run_idp(
        "client",
        "add",
        "Photos",
        "--redirect-uri",
        REDIRECT,
        "--auth-method",
        "private_key_jwt",
        "--jwks",
        str(jwks),
        env=initialised,
        cwd=tmp_path,
    )
    line = assert_one_line_error(result, 1)
    assert "JWK" in line
    assert stored(OAuthClient, initialised) == 0


def test_empty_client_id_is_refused_not_made_random(
    initialised: dict[str, str], tmp_path: Path
) -> None:
    args = ("client", "add", "Photos", "--redirect-uri", REDIRECT, "--client-id", "")
    result = run_idp(*args, env=initialised, cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "client_id" in line
    assert stored(OAuthClient, initialised) == 0


@pytest.mark.parametrize("args", [("init",), ("key", "list")], ids=["init", "key-list"])
def test_keys_dir_that_is_a_file(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    keys_file = tmp_path / "keys-file"
    keys_file.write_text("not a directory\n")
    env["IDP_KEYS_DIR"] = str(keys_file)
    result = run_idp(*args, env=env, cwd=tmp_path)
    line = assert_one_line_error(result, 1)
    assert "keys_dir" in line and str(keys_file) in line
    assert keys_file.read_text() == "not a directory\n"
    # `idp init` stops before the database: nothing half-initialised.
    assert database_tables(env["IDP_DATABASE_URL"]) == set()


@pytest.mark.parametrize("command", ["init", "serve"])
def test_key_file_listed_but_deleted(
    initialised: dict[str, str], tmp_path: Path, command: str
) -> None:
    keys_dir = Path(initialised["IDP_KEYS_DIR"])
    (deleted,) = sorted(keys_dir.glob("*.jwk.json"))[:1]
    deleted.unlink()
    before = {path.name: path.read_bytes() for path in keys_dir.iterdir()}

    # `serve` for real: were the check missing, it would serve here instead of failing.
    if command == "serve":
        result = idp("serve", "--port", str(free_port()), env=initialised, cwd=tmp_path)
    else:
        result = run_idp("init", env=initialised, cwd=tmp_path)

    line = assert_one_line_error(result, 1)
    assert deleted.name in line and "missing" in line
    assert "restore it from a backup" in line  # says what to do
    assert {path.name: path.read_bytes() for path in keys_dir.iterdir()} == before


@pytest.mark.backends("sqlite")  # the URL under test is SQLite's, whatever the run's database
def test_mistyped_sqlite_url_creates_no_directories(env: dict[str, str], tmp_path: Path) -> None:
    typo = tmp_path / "instnace" / "data"
    env["IDP_DATABASE_URL"] = f"sqlite:///{typo / 'idp.sqlite3'}"
    for args in (("user", "list"), ("key", "list"), ("--help",)):
        result = run_idp(*args, env=env, cwd=tmp_path)
        assert "Traceback" not in result.stderr, args
    line = assert_one_line_error(run_idp("user", "list", env=env, cwd=tmp_path), 1)
    assert "database" in line
    assert not (tmp_path / "instnace").exists()
    # `idp init` is the one command that creates the database, and its folder.
    assert run_idp("init", env=env, cwd=tmp_path).returncode == 0
    assert (typo / "idp.sqlite3").is_file()


@pytest.mark.backends("sqlite")  # no database is opened: once is enough
def test_help_hides_flask_options(env: dict[str, str], tmp_path: Path) -> None:
    result = run_idp("--help", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for option in ("--app", "--env-file", "--debug"):
        assert option not in result.stdout
    refused = run_idp("--app", "elsewhere:create_app", "key", "list", env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "No such option" in refused.stderr
