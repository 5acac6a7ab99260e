"""Benchmark: ``idp serve`` with sync or gthread workers and several worker counts.

Run: ``.venv/bin/python bench/serve_workers.py [--seconds S] [--clients C] [--database-url U]``.
It runs ``idp init`` on a temporary SQLite database (or the empty database at U), adds a
service account, then for each configuration starts a real ``idp serve`` (tuned with
``GUNICORN_CMD_ARGS``) and drives it with C threads, each on its own keep-alive connection,
looping over discovery then a ``client_credentials`` token request for S seconds. Prints
requests per second and the median and 99th-percentile latency of each configuration, then
how many discovery requests get through in 3 s while ``--slow`` clients trickle uploads. The
driver shares the machine's cores with the server: compare rows, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
CONFIGS = [
    ("sync", 3, 1),
    ("sync", 5, 1),
    ("sync", 8, 1),
    ("gthread", 2, 4),
    ("gthread", 3, 4),
    ("gthread", 5, 4),
    ("gthread", 5, 8),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def drive(base: str, auth: tuple[str, str], seconds: float, clients: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        mine: list[float] = []
        with requests.Session() as http:
            while time.monotonic() < stop:
                started = time.perf_counter()
                assert http.get(f"{base}/.well-known/openid-configuration").ok
                mine.append(time.perf_counter() - started)
                started = time.perf_counter()
                response = http.post(
                    f"{base}/token", data={"grant_type": "client_credentials"}, auth=auth
                )
                assert response.ok, response.text
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def slow_clients(base: str, count: int, seconds: float) -> list[float]:
    """Hold ``count`` uploads trickling one byte every 0.2 s; time discovery meanwhile."""
    port = int(base.rsplit(":", 1)[1])
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: 1000\r\n\r\n"
        )
        sockets.append(sock)
    stop = time.monotonic() + seconds
    latencies: list[float] = []

    def trickle() -> None:
        while time.monotonic() < stop:
            for sock in sockets:
                sock.sendall(b"a")
            time.sleep(0.2)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    with requests.Session() as http:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                http.get(
                    f"{base}/.well-known/openid-configuration", timeout=stop - time.monotonic()
                )
            except (requests.Timeout, ValueError):
                latencies.append(float("inf"))
                break
            latencies.append(time.perf_counter() - started)
    feeder.join()
    for sock in sockets:
        sock.close()
    return latencies


def wait_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("idp serve exited")
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("idp serve did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--slow", type=int, default=6, help="slow uploads held meanwhile")
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="idp-bench-serve-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    env.update(
        IDP_DATABASE_URL=args.database_url or f"sqlite:///{folder / 'idp.sqlite3'}",
        IDP_KEYS_DIR=str(folder / "keys"),
        IDP_INSTANCE_DIR=str(folder / "instance"),
        IDP_SECRET_KEY="bench-secret-key",
        IDP_LOG_LEVEL="WARNING",
        IDP_LOGIN_RATE_LIMIT="100000 per minute",
    )
    try:
        subprocess.run([BIN / "idp", "init"], env=env, check=True, capture_output=True)
        added = subprocess.run(
            [BIN / "idp", "client", "add", "bench", "--service-account", "--scope", "openid"]
            + ["--json"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        client = json.loads(added.stdout)
        auth = (client["client_id"], client["client_secret"])
        print(f"{args.clients} clients, {args.seconds:g} s each, {os.cpu_count()} cores")
        print(
            f"{'class':8} {'workers':>7} {'threads':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
            f"  discovery beside {args.slow} slow uploads: {'n':>5} {'p50 ms':>7}"
        )
        for worker_class, workers, threads in CONFIGS:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            tuning = f"--worker-class {worker_class} --threads {threads}"
            tuned = dict(env, GUNICORN_CMD_ARGS=tuning)
            process = subprocess.Popen(
                [BIN / "idp", "serve", "--port", str(port), "--workers", str(workers)],
                env=tuned,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_up(base, process)
                drive(base, auth, 1, args.clients)  # warm up every worker
                latencies = drive(base, auth, args.seconds, args.clients)
                beside = slow_clients(base, args.slow, 3)
            finally:
                process.terminate()
                process.wait(timeout=60)
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99)]
            print(
                f"{worker_class:8} {workers:>7} {threads:>7} {len(latencies) / args.seconds:>7.0f}"
                f" {statistics.median(latencies) * 1000:>7.1f} {p99 * 1000:>7.1f}"
                f"  {'':>32} {len(beside):>5} {statistics.median(beside) * 1000:>7.1f}"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
