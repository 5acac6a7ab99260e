"""Benchmark: what the token usage record costs an introspection (RFC 7662).

Run: ``.venv/bin/python bench/token_usage.py [--rounds N] [--database-url URL]``. It builds
an app on a temporary SQLite database (or a PostgreSQL database you name: its tables are
created if missing, and emptied), makes a personal access token and an access token, registers a
resource server, then times ``POST /introspect`` of each token with the usage write on and
with it bypassed, interleaved so both see the same machine noise. Prints the median per
case and the extra cost of the write (and the difference of the means, which includes the
batch written every few seconds). The goal: the write costs less than 10 % of an
introspection. ``--unbatched`` writes every count at once (one upsert and commit per
introspection), to compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import FAST_HASH  # noqa: E402
from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.conftest import reset_schema  # noqa: E402
from tests.helpers import oidc  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--unbatched",
        action="store_true",
        help="write every introspection's count at once (one upsert and commit per call)",
    )
    args = parser.parse_args()

    from idp import create_app
    from idp import db
    from idp.keys.store import get_key_store
    from idp.tokens import service as pats
    from idp.tokens import usage
    from idp.users.service import require_user_by_email

    if args.unbatched:
        usage.INTROSPECTION_FLUSH = timedelta(0)

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "issuer": "http://idp.test",
                "database_url": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
                "keys_dir": f"{tmp}/keys",
                "instance_dir": f"{tmp}/instance",
                "secret_key": "bench",
                **FAST_HASH,
            }
        )
        db.Base.metadata.create_all(db.get_database(app).engine)  # an empty PostgreSQL database
        reset_schema(app)
        with app.app_context():
            get_key_store().ensure_keys(db.now())
        user = make_user(app, "bench@example.com", "bench-password")
        with app.app_context():
            _, pat = pats.create_token(
                require_user_by_email(user.email),
                name="bench",
                scopes=["openid"],
                expires_at=db.now() + timedelta(days=7),
            )
        http = app.test_client()
        AuthActions(http).login(user.email, user.password)
        client = oidc.register(app, "Bench app")
        api = oidc.register(
            app, "Bench API", redirect_uris=["https://api.example.com/x"], is_resource_server=True
        )
        access = oidc.issue_tokens(http, client, "openid")["access_token"]
        record_use = usage.record_use

        def skip_record(*args: Any, **kwargs: Any) -> None:
            return None

        def introspect(token: str, write: bool) -> Callable[[], float]:
            def run() -> float:
                usage.record_use = record_use if write else skip_record  # type: ignore[assignment]
                start = time.perf_counter()
                response = http.post("/introspect", data={"token": token}, auth=api.basic_auth)
                elapsed = time.perf_counter() - start
                assert response.get_json()["active"] is True, response.data
                return elapsed

            return run

        cases = {
            (kind, write): introspect(token, write)
            for kind, token in (("personal access token", pat), ("access token", access))
            for write in (True, False)
        }
        timings: dict[tuple[str, bool], list[float]] = {case: [] for case in cases}
        for run in cases.values():  # warm-up: first rows, caches, connections
            for _ in range(20):
                run()
        for _ in range(args.rounds):
            for case, run in cases.items():
                timings[case].append(run())
        usage.record_use = record_use  # type: ignore[assignment]
        backend = db.get_database(app).engine.dialect.name
    mode = "unbatched" if args.unbatched else "batched"
    print(f"{backend}, {mode}, {args.rounds} rounds per case, interleaved; medians in ms")
    for kind in ("personal access token", "access token"):
        with_write = statistics.median(timings[(kind, True)]) * 1000
        without = statistics.median(timings[(kind, False)]) * 1000
        extra = with_write - without
        mean_extra = (
            statistics.fmean(timings[(kind, True)]) - statistics.fmean(timings[(kind, False)])
        ) * 1000
        print(
            f"  {kind:<22} with the write {with_write:6.3f}   bypassed {without:6.3f}   "
            f"write {extra:+6.3f} ({extra / without:+.1%}; mean {mean_extra:+.3f}, batches "
            "included)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
