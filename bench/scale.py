"""Listing and revoking one user's sessions among many: p50 / p99 on a seeded PostgreSQL.

Run: ``.venv/bin/python bench/scale.py [--users 100000] [--sessions 1000000] [--rounds 200]``.
It creates a throwaway PostgreSQL database, builds the schema (``idp init``'s migrations),
seeds it server-side like ``bench/run.py --seed-users`` (users, sessions spread round-robin,
one token per session), then times, for ``--rounds`` random users, the service calls behind
``idp session list --user`` and ``idp session revoke --user`` (each user holds sessions /
users sessions). The flow and login loops at that scale: ``bench/run.py --db postgresql
--no-redis --no-peer --loops flow,login --seed-users 100000 --seed-sessions 1000000``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import run as driver  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--verbose", action="store_true", help="time each revoke statement")
    parser.add_argument(
        "--postgres-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()

    from sqlalchemy import event
    from sqlalchemy import select

    from idp import create_app
    from idp import db
    from idp.models.user import User
    from idp.sessions import service

    name = driver.create_postgres_database(args.postgres_admin_url)
    url = args.postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = create_app(
                {
                    "issuer": "http://idp.test",
                    "database_url": url,
                    "keys_dir": f"{tmp}/keys",
                    "instance_dir": f"{tmp}/instance",
                    "secret_key": "bench",
                }
            )
            db.upgrade_database(db.get_database(app).engine)
            driver.seed(url, args.users, args.sessions)
            per_user = args.sessions // args.users
            statements = {"list": 0, "revoke": 0, "other": 0}
            current = ["list"]
            # Time per statement of the revoke (its first words), and of its commit.
            spent: dict[str, list[float]] = {}
            started_at = [0.0]

            def count(*args: object) -> None:
                statements[current[0]] += 1
                started_at[0] = time.perf_counter()

            def done(*args: object) -> None:
                if current[0] == "revoke":
                    words = " ".join(str(args[2]).split()[:4])[:60]
                    spent.setdefault(words, []).append(time.perf_counter() - started_at[0])

            def commit_started(*args: object) -> None:
                started_at[0] = time.perf_counter()

            def commit_done(*args: object) -> None:
                if current[0] == "revoke":
                    spent.setdefault("COMMIT", []).append(time.perf_counter() - started_at[0])

            engine = db.get_database(app).engine
            event.listen(engine, "before_cursor_execute", count)
            event.listen(engine, "after_cursor_execute", done)
            event.listen(engine, "commit", commit_started)
            event.listen(db.get_database(app).sessionmaker, "after_commit", commit_done)
            listed: list[float] = []
            revoked: list[float] = []
            picks = random.sample(range(1, args.users + 1), args.rounds)
            for number in picks:
                with app.app_context():
                    current[0] = "other"
                    session = db.get_session()
                    email = f"user{number}@scale.example"
                    user = session.scalar(select(User).where(User.email == email))
                    assert user is not None
                    current[0] = "list"
                    start = time.perf_counter()
                    logins = service.list_user_logins(user)
                    listed.append(time.perf_counter() - start)
                    assert len(logins) == per_user, (email, len(logins))
                    current[0] = "revoke"
                    start = time.perf_counter()
                    ended = service.revoke_user_sessions(user, "revoked_by_admin")
                    revoked.append(time.perf_counter() - start)
                    assert len(ended) == per_user
            print(
                f"{args.users:,} users, {args.sessions:,} sessions and tokens, "
                f"{per_user} sessions per user, {args.rounds} users picked at random"
            )
            for label, values in (("list", listed), ("revoke", revoked)):
                print(
                    f"  {label:<7} p50 {percentile(values, 0.5):6.1f} ms   "
                    f"p99 {percentile(values, 0.99):6.1f} ms   max {max(values) * 1000:6.1f} ms   "
                    f"{statements[label] / len(values):.0f} statements"
                )
            if args.verbose:
                print("  revoke, per statement (mean ms per revoke, cursor time):")
                for words, times in sorted(spent.items(), key=lambda item: -sum(item[1])):
                    print(f"    {sum(times) / len(revoked) * 1000:6.2f}  {words}")
    finally:
        driver.drop_postgres_database(args.postgres_admin_url, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
