"""Benchmark: the authorization code flow's server side, RS256 versus ES256 ID tokens.

Run: ``.venv/bin/python bench/token_endpoint.py [--rounds N]``. It builds an app on a
temporary SQLite database, logs one user in through the real form, then times rounds of
/authorize (code issuance) and /token (code exchange with PKCE, ID + access token signing)
for a client signing ID tokens with RS256 and one with ES256, interleaved so both see the
same machine noise. Prints medians per step and the ES256/RS256 ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import FAST_HASH  # noqa: E402
from tests.conftest import AuthActions  # noqa: E402
from tests.conftest import make_user  # noqa: E402
from tests.conftest import reset_schema  # noqa: E402
from tests.helpers import oidc  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    from idp import create_app
    from idp.keys.store import get_key_store

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "issuer": "http://idp.test",
                "database_url": f"sqlite:///{tmp}/bench.sqlite3",
                "keys_dir": f"{tmp}/keys",
                "instance_dir": f"{tmp}/instance",
                "secret_key": "bench",
                **FAST_HASH,
            }
        )
        reset_schema(app)
        with app.app_context():
            from idp import db

            get_key_store().ensure_keys(db.now())
        user = make_user(app, "bench@example.com", "bench-password")
        http = app.test_client()
        AuthActions(http).login(user.email, user.password)
        clients = {
            alg: oidc.register(app, f"Bench {alg}", id_token_signed_response_alg=alg)
            for alg in ("RS256", "ES256")
        }
        timings: dict[str, dict[str, list[float]]] = {
            alg: {"authorize": [], "token": []} for alg in clients
        }
        for _ in range(args.rounds):
            for alg, client in clients.items():
                verifier, challenge = oidc.pkce_pair()
                start = time.perf_counter()
                code = oidc.get_code(
                    http, client, code_challenge=challenge, code_challenge_method="S256", nonce=None
                )
                middle = time.perf_counter()
                response = oidc.exchange(http, client, code, code_verifier=verifier)
                end = time.perf_counter()
                assert response.status_code == 200, response.data
                timings[alg]["authorize"].append(middle - start)
                timings[alg]["token"].append(end - middle)
    print(f"rounds: {args.rounds} per algorithm, interleaved; medians in ms")
    for step in ("authorize", "token"):
        rs = statistics.median(timings["RS256"][step]) * 1000
        es = statistics.median(timings["ES256"][step]) * 1000
        print(f"  {step:<10} RS256 {rs:7.2f}   ES256 {es:7.2f}   ES256/RS256 {es / rs:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
