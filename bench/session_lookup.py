"""Benchmark: what the Redis cache of login sessions saves (PostgreSQL, with and without Redis).

Run: ``.venv/bin/python bench/session_lookup.py [--rounds R] [--postgres-url URL]
[--redis-url URL]``. It makes a throwaway PostgreSQL database (from the admin URL), logs one
user in through the real form on an app without Redis and on one with it (the session
cache on, idp/sessions/cache.py) and times, interleaved so all see the same machine noise:

- ``request``: a whole logged-in page (GET /account/) without Redis, what a user waits for;
- ``cached``: the same page with Redis, its session found in the cache (no SELECT);
- ``sql``: what each request does today to find its session: one SELECT of the session
  joined to its user, on a fresh ORM session whose connection is already checked out (a
  logged-in page queries the database anyway, so the checkout is paid either way);
- ``redis``: what a cache would do instead: one round trip fetching the cached session and
  user rows and the revocation marker (MGET), decoding the JSON and building the objects.

Prints medians in ms (wall clock), the share of a request the cache could save (sql -
redis) and did save (request - cached), and the median CPU time of this process (user +
sys: the IdP's Python, not PostgreSQL's or Redis's) per page, with and without the cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import FAST_HASH  # noqa: E402
from tests.conftest import POSTGRES_ADMIN_URL  # noqa: E402
from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import create_postgres_database  # noqa: E402
from tests.conftest import drop_postgres_database  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.helpers.redis_server import RedisServer  # noqa: E402


def timed(work: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    work()
    return (clock() - start) * 1000


def count_statements(app: Any, work: Callable[[], object]) -> int:
    """Return how many SQL statements ``app`` sends while ``work`` runs."""
    from sqlalchemy import event

    from idp import db

    seen: list[str] = []
    engine = db.get_database(app).engine

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--postgres-url", default=POSTGRES_ADMIN_URL)
    parser.add_argument("--redis-url", default=None, help="default: a redis-server of its own")
    args = parser.parse_args()

    import redis
    from sqlalchemy import inspect
    from sqlalchemy import select
    from sqlalchemy import text

    from idp import create_app
    from idp import db
    from idp.keys.store import get_key_store
    from idp.models.login import LoginSession
    from idp.models.user import User
    from idp.sessions import storage

    database_url = create_postgres_database(args.postgres_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = {
                "issuer": "http://idp.test",
                "database_url": database_url,
                "keys_dir": f"{tmp}/keys",
                "instance_dir": f"{tmp}/instance",
                "secret_key": "bench",
                **FAST_HASH,
            }
            app = create_app(config)
            db.upgrade_database(db.get_database(app).engine)
            with app.app_context():
                get_key_store().ensure_keys(db.now())
            user = make_user(app, "bench@example.com", "bench password, long enough")
            browser = app.test_client()
            assert AuthActions(browser).login(user.email, user.password).status_code == 302
            server = None
            if args.redis_url is None:  # the machine's Redis is shared with test runs
                server = RedisServer(Path(tmp))
                server.start()
            redis_url = args.redis_url or server.url
            cached_app = create_app({**config, "redis_url": redis_url})
            cached_browser = cached_app.test_client()
            assert AuthActions(cached_browser).login(user.email, user.password).status_code == 302
            with app.app_context():
                login = (
                    db.get_session().scalars(select(LoginSession).order_by(LoginSession.id)).first()
                )
                assert login is not None
                token_hash = login.token_hash

                def columns(row: object) -> dict[str, object]:
                    mapper = inspect(type(row))
                    return {c.key: getattr(row, c.key) for c in mapper.column_attrs}

                cached = json.dumps(
                    {"login": columns(login), "user": columns(login.user)}, default=str
                )
            client = redis.Redis.from_url(redis_url)
            key = f"idp:bench:login:{token_hash}"
            client.set(key, cached)

            def sql_lookup() -> float:
                with app.app_context():
                    # Every logged-in page queries the database anyway (a code, a list, a
                    # touch): the connection's checkout and ping are paid either way.
                    db.get_session().execute(text("SELECT 1"))
                    start = time.perf_counter()
                    found = storage.get_login_by_token_hash(token_hash)
                    assert found is not None and found.user.email
                    return (time.perf_counter() - start) * 1000

            def redis_lookup() -> None:
                value, revoked = client.mget(key, f"idp:bench:revoked:{token_hash}")
                data = json.loads(value)
                found = LoginSession(**{k: v for k, v in data["login"].items() if k != "amr"})
                found.user = User(**data["user"])
                assert revoked is None and found.user.email

            def request() -> None:
                assert browser.get("/account/").status_code == 200

            def cached() -> None:
                assert cached_browser.get("/account/").status_code == 200

            cpu = time.process_time
            samples: dict[str, list[float]] = {
                name: [] for name in ("request", "cached", "sql", "redis", "cpu", "cpu_cached")
            }
            for _ in range(20):  # warm up: compiled SQL, pools, templates, the cache
                request(), cached(), sql_lookup(), redis_lookup()
            statements = {"request": count_statements(app, request)}
            statements["cached"] = count_statements(cached_app, cached)
            for _ in range(args.rounds):
                samples["request"].append(timed(request))
                samples["cached"].append(timed(cached))
                samples["sql"].append(sql_lookup())
                samples["redis"].append(timed(redis_lookup))
                samples["cpu"].append(timed(request, cpu))
                samples["cpu_cached"].append(timed(cached, cpu))
            client.close()
            db.get_database(cached_app).engine.dispose()
            if server is not None:
                server.stop()
            db.get_database(app).engine.dispose()
    finally:
        drop_postgres_database(args.postgres_url, database_url)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, value in medians.items():
        print(f"{name:10} median {value:7.3f} ms")
    print(
        f"SQL statements per page: {statements['request']} without Redis, "
        f"{statements['cached']} with the cache"
    )
    saving = medians["sql"] - medians["redis"]
    print(f"could    {saving:7.3f} ms per request = {100 * saving / medians['request']:.1f} %")
    saved = medians["request"] - medians["cached"]
    print(f"saved    {saved:7.3f} ms per request = {100 * saved / medians['request']:.1f} %")
    saved_cpu = medians["cpu"] - medians["cpu_cached"]
    print(f"cpu      {saved_cpu:7.3f} ms per request = {100 * saved_cpu / medians['cpu']:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
