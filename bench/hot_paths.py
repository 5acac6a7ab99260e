"""CPU time and SQL statements per operation of the flow and refresh loops, in-process.

Run: ``.venv/bin/python bench/hot_paths.py [--db sqlite|postgresql] [--rounds 100]
[--repeat 5] [--profile flow|refresh] [--top 30]``. It builds the app as
``bench/statements.py`` does, logs a user in through the real form, warms up, then runs each
loop ``--repeat`` times ``--rounds`` operations through the Flask test client and prints per
operation: this process's CPU time (user + system, ``time.process_time``; PostgreSQL's own
work runs in its server and is not in it), its minimum and median over the repeats (a loaded
machine inflates CPU time too, through shared caches and cores: the minimum is the steadier
figure), the SQL statements and the commits. ``--profile`` runs cProfile over one loop and
prints its top entries by own time and by cumulative time.

| loop | one operation |
| --- | --- |
| flow | GET /authorize (login cookie, PKCE S256, nonce) -> POST /token (code) -> GET /userinfo |
| refresh | POST /token ``grant_type=refresh_token``, the next one with the token rotated in |
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import statements as counting  # noqa: E402

from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.helpers import oidc  # noqa: E402

SCOPE = "openid profile email offline_access"


def flow_loop(http: Any, client: Any) -> Callable[[], None]:
    def once() -> None:
        verifier, challenge = oidc.pkce_pair()
        answer = oidc.authorize(
            http,
            client,
            scope=SCOPE,
            code_challenge=challenge,
            code_challenge_method="S256",
            nonce=secrets.token_urlsafe(8),
        )
        code = oidc.query_of(answer.headers["Location"])["code"]
        tokens = oidc.exchange(http, client, code, code_verifier=verifier).get_json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get("/userinfo", headers=bearer).status_code == 200

    return once


def refresh_loop(http: Any, client: Any) -> Callable[[], None]:
    verifier, challenge = oidc.pkce_pair()
    answer = oidc.authorize(
        http, client, scope=SCOPE, code_challenge=challenge, code_challenge_method="S256"
    )
    code = oidc.query_of(answer.headers["Location"])["code"]
    current = [oidc.exchange(http, client, code, code_verifier=verifier).get_json()]

    def once() -> None:
        form = {"grant_type": "refresh_token", "refresh_token": current[0]["refresh_token"]}
        answer = http.post("/token", data=form, auth=client.basic_auth)
        assert answer.status_code == 200, answer.data
        current[0] = answer.get_json()

    return once


LOOPS = {"flow": flow_loop, "refresh": refresh_loop}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=100, help="operations per repeat")
    parser.add_argument("--repeat", type=int, default=5, help="repeats (min and median shown)")
    parser.add_argument("--loops", default="flow,refresh")
    parser.add_argument("--profile", choices=tuple(LOOPS), help="cProfile one loop")
    parser.add_argument("--top", type=int, default=30, help="profile entries to print")
    args = parser.parse_args()

    from sqlalchemy import event

    from idp.db import get_database

    with counting.bench_app(args.db) as app:
        user = make_user(app, "bench@example.com", "bench-password")
        http = app.test_client()
        client = oidc.register(app, "Bench")
        AuthActions(http).login(user.email, user.password)
        engine = get_database(app).engine
        for name in args.loops.split(","):
            once = LOOPS[name](http, client)
            for _ in range(max(20, args.rounds // 10)):  # warm caches, compiled statements
                once()
            counts = counting.Counts()
            event.listen(engine, "before_cursor_execute", counts.statement)
            event.listen(engine, "commit", counts.commit)
            profiler = cProfile.Profile() if args.profile == name else None
            cpu = []
            for _ in range(args.repeat):
                started = time.process_time()
                if profiler is not None:
                    profiler.enable()
                for _ in range(args.rounds):
                    once()
                if profiler is not None:
                    profiler.disable()
                cpu.append((time.process_time() - started) / args.rounds * 1000)
            event.remove(engine, "before_cursor_execute", counts.statement)
            event.remove(engine, "commit", counts.commit)
            total = args.rounds * args.repeat
            print(
                f"{name:<8} CPU ms per operation: min {min(cpu):6.2f}, "
                f"median {statistics.median(cpu):6.2f}; "
                f"{sum(counts.kinds.values()) / total:.1f} statements, "
                f"{counts.commits / total:.1f} commits "
                f"({args.repeat} x {args.rounds} operations, {args.db})"
            )
            if profiler is not None:
                for order in ("tottime", "cumulative"):
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
                    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
