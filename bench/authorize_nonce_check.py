"""Benchmark: /authorize with few versus many stored codes (the nonce-reuse check).

Run: ``.venv/bin/python bench/authorize_nonce_check.py [--codes N] [--rounds R] [--without-index]
[--database-url URL]``. It migrates a temporary SQLite database (or the empty database given
by URL), logs one user in through the real form, stores 3 codes for one client and N for
another (one INSERT ... SELECT), then times rounds of /authorize with a fresh nonce for both,
interleaved so both see the same machine noise. ``--without-index`` puts back the old schema
(codes indexed by client_id only) to show what the index changes. Prints medians in ms.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import FAST_HASH  # noqa: E402
from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.helpers import oidc  # noqa: E402
from tests.oidc.test_nonce_lookup import INDEX  # noqa: E402
from tests.oidc.test_nonce_lookup import store_codes  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codes", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--without-index", action="store_true")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from idp import create_app
    from idp import db
    from idp.keys.store import get_key_store

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
        db.upgrade_database(db.get_database(app).engine)  # the migrations' schema
        with app.app_context():
            get_key_store().ensure_keys(db.now())
            if args.without_index:
                connection = db.get_session().connection()
                connection.exec_driver_sql(f"DROP INDEX {INDEX}")
                connection.exec_driver_sql(
                    "CREATE INDEX ix_old_client_id ON oauth_authorization_code (client_id)"
                )
                db.get_session().commit()
        user = make_user(app, "bench@example.com", "bench-password")
        http = app.test_client()
        AuthActions(http).login(user.email, user.password)
        clients = {"few": oidc.register(app, "Few"), "many": oidc.register(app, "Many")}
        start = time.perf_counter()
        store_codes(app, clients["many"], lambda: datetime.now(UTC), args.codes)  # type: ignore[arg-type]
        print(f"stored {args.codes} codes in {time.perf_counter() - start:.1f} s")
        for _ in range(3):
            oidc.get_code(http, clients["few"], nonce=secrets.token_urlsafe(8))
        timings: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, client in clients.items():
                start = time.perf_counter()
                oidc.get_code(http, client, nonce=secrets.token_urlsafe(8))
                timings[name].append(time.perf_counter() - start)
    schema = "client_id index only (before)" if args.without_index else "(client_id, nonce) index"
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}, {schema}; {args.rounds} rounds, interleaved; /authorize medians in ms")
    labels = {"few": "3 codes (+1 a round)", "many": f"{args.codes} codes"}
    for name, values in timings.items():
        print(f"  {labels[name]:<22} {statistics.median(values) * 1000:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
