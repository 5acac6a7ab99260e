"""``make demo``: set up the IdP with demo data, start it (and the demo apps), stop all on Ctrl-C.

Runs the ``idp`` console script as any operator would; imports nothing from ``idp``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
IDP = str(BIN / "idp")
IDP_PORT = 5000


def banner(init_output: str) -> str:
    users = [
        line.split("Demo user ", 1)[1]
        for line in init_output.splitlines()
        if line.startswith("Demo user ")
    ]
    lines = [
        "",
        "idp demo is running (Ctrl-C stops it)",
        f"  IdP          http://127.0.0.1:{IDP_PORT}/   (sign in here)",
        "",
        "Demo accounts:",
        *(f"  {user}" for user in users),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    env = dict(os.environ)
    init = subprocess.run(
        [IDP, "init", "--demo"], env=env, capture_output=True, text=True, check=False
    )
    sys.stdout.write(init.stdout)
    if init.returncode != 0:
        sys.stderr.write(init.stderr)
        return init.returncode
    processes = [
        subprocess.Popen(
            [IDP, "serve", "--host", "127.0.0.1", "--port", str(IDP_PORT), "--workers", "2"],
            env=env,
        )
    ]
    time.sleep(1.0)
    print(banner(init.stdout), flush=True)
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return max((process.returncode or 0) for process in processes)


if __name__ == "__main__":
    sys.exit(main())
