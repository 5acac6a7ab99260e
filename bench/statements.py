"""Count the SQL statements and commits each request of the benchmark loops costs.

Run: ``.venv/bin/python bench/statements.py [--db sqlite|postgresql]``. It builds the app
in-process on a throwaway database (SQLite file, or a PostgreSQL database it creates and
drops), logs a user in through the real form, then sends each request of the loops of
bench/run.py once warmed up (the second time) and prints what a SQLAlchemy event saw:
statements (SELECT / INSERT / UPDATE / DELETE) and commits per request.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import FAST_HASH  # noqa: E402
from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.conftest import reset_schema  # noqa: E402
from tests.helpers import oidc  # noqa: E402
from tests.helpers import saml  # noqa: E402
from tests.helpers.forms import csrf_token  # noqa: E402


class Counts:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.commits = 0
        self.elapsed = 0.0
        self.log: list[str] = []

    def statement(self, *args: Any) -> None:
        text = str(args[2]).lstrip()
        self.kinds[text.split(None, 1)[0].upper()] += 1
        flat = " ".join(text.split())
        self.log.append(flat[:70] + " ... " + flat[-110:] if len(flat) > 190 else flat)

    def commit(self, *args: Any) -> None:
        self.commits += 1

    def line(self) -> str:
        total = sum(self.kinds.values())
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.kinds.items()))
        return (
            f"{total:3d} statements ({kinds}), {self.commits} commits, {self.elapsed * 1000:.1f} ms"
        )


@contextmanager
def bench_app(db: str) -> Iterator[Any]:
    """Yield the app built in-process on a throwaway database, keys made, schema fresh."""
    from idp import create_app
    from idp.db import get_database
    from idp.keys.store import get_key_store

    with tempfile.TemporaryDirectory() as tmp:
        database = None
        if db == "postgresql":
            from tests.conftest import create_postgres_database
            from tests.conftest import drop_postgres_database

            admin = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
            url = database = create_postgres_database(admin)
        else:
            url = f"sqlite:///{tmp}/bench.sqlite3"
        try:
            app = create_app(
                {
                    "issuer": "http://idp.test",
                    "database_url": url,
                    "keys_dir": f"{tmp}/keys",
                    "instance_dir": f"{tmp}/instance",
                    "secret_key": "bench",
                    **FAST_HASH,
                }
            )
            if database:  # reset_schema truncates PostgreSQL tables: create them first
                from idp.db import upgrade_database

                upgrade_database(get_database(app).engine)
            reset_schema(app)
            with app.app_context():
                from idp import db as idp_db

                get_key_store().ensure_keys(idp_db.now())
            yield app
        finally:
            if database:
                drop_postgres_database(admin, database)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--verbose", action="store_true", help="print each statement")
    args = parser.parse_args()

    from sqlalchemy import event

    from idp.db import get_database

    with bench_app(args.db) as app:
        run(app, args.verbose, get_database(app).engine, event)
    return 0


def run(app: Any, verbose: bool, engine: Any, event: Any) -> None:
    user = make_user(app, "bench@example.com", "bench-password")
    http = app.test_client()
    client = oidc.register(app, "Bench")
    settings = saml.sp_settings(http, authnRequestsSigned=True)
    saml.register(app, settings)

    def measure(name: str, send: Any) -> Any:
        counts = Counts()
        event.listen(engine, "before_cursor_execute", counts.statement)
        event.listen(engine, "commit", counts.commit)
        started = time.perf_counter()
        try:
            result = send()
        finally:
            counts.elapsed = time.perf_counter() - started
            event.remove(engine, "before_cursor_execute", counts.statement)
            event.remove(engine, "commit", counts.commit)
        print(f"{name:<28} {counts.line()}")
        if verbose:
            for text in counts.log:
                print(f"      {text}")
        return result

    AuthActions(http).login(user.email, user.password)
    one_round(app, http, user, client, settings, lambda name, send: send())
    print("second round (warm caches), per request:")
    one_round(app, http, user, client, settings, measure)


def one_round(app: Any, http: Any, user: Any, client: Any, settings: Any, step: Any) -> None:
    browser = app.test_client()  # a new browser logs in through the form
    page = step("GET /login", lambda: browser.get("/login"))
    form = {"csrf_token": csrf_token(page.data), "username": user.email, "password": user.password}
    step("POST /login", lambda: browser.post("/login", data=form))
    verifier, challenge = oidc.pkce_pair()
    answer = step(
        "GET /authorize",
        lambda: oidc.authorize(
            http,
            client,
            scope="openid profile email offline_access",
            code_challenge=challenge,
            code_challenge_method="S256",
            nonce=secrets.token_urlsafe(8),
        ),
    )
    code = oidc.query_of(answer.headers["Location"])["code"]
    exchanged = step(
        "POST /token (code)", lambda: oidc.exchange(http, client, code, code_verifier=verifier)
    )
    tokens = exchanged.get_json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    step("GET /userinfo", lambda: http.get("/userinfo", headers=bearer))
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    step("POST /token (refresh)", lambda: http.post("/token", data=refresh, auth=client.basic_auth))
    token = {"token": tokens["access_token"]}
    step("POST /introspect", lambda: http.post("/introspect", data=token, auth=client.basic_auth))
    step("GET discovery", lambda: http.get("/.well-known/openid-configuration"))
    step("GET /jwks", lambda: http.get("/jwks"))
    path, _ = saml.login_url(settings)
    answer = step("GET /saml/sso (signed)", lambda: http.get(path))
    assert answer.status_code == 200, answer.data[-400:]


if __name__ == "__main__":
    sys.exit(main())
