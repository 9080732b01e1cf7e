"""What the cluster rehearsal's TLS-only services cost (not a test): server starts and per-connection TLS.

    python bench/tls_services.py [--runs 3]

The cluster profile starts its own MariaDB (fresh data directory, require_secure_transport) and a
TLS-only Redis each run; every node connection then pays a TLS handshake. Prints a Markdown table
(docs/rehearsal.md holds the last one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import pymysql  # noqa: E402
import redis  # noqa: E402

from rehearsal.nodes import free_port  # noqa: E402
from rehearsal.services import RehearsalRedis, TlsOnlyMariaDb  # noqa: E402

CONNECTIONS = 20


def _seconds(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def mariadb(workdir: Path) -> dict[str, float]:
    server = TlsOnlyMariaDb(workdir / "mariadb", free_port())
    start = _seconds(server.start)
    try:

        def connect():
            for _ in range(CONNECTIONS):
                pymysql.connect(
                    host="127.0.0.1", port=server.port, user="root", ssl={"ca": str(server.ca_bundle)}
                ).close()

        return {
            "MariaDB start (install-db + mariadbd)": start,
            "MariaDB TLS connect (ms)": _seconds(connect) / CONNECTIONS * 1000,
        }
    finally:
        server.stop()


def redis_server(workdir: Path, tls: bool) -> dict[str, float]:
    server = RehearsalRedis(workdir / f"redis-{tls}", "bench", free_port(), tls=tls)
    start = _seconds(server.start)
    options = {"ssl": True, "ssl_ca_certs": str(server.ca_bundle)} if tls else {}
    try:

        def connect():
            for _ in range(CONNECTIONS):
                client = redis.Redis(port=server.port, password="bench", **options)
                client.ping()
                client.close()

        label = "TLS" if tls else "plain"
        return {
            f"Redis {label} start": start,
            f"Redis {label} connect + AUTH (ms)": _seconds(connect) / CONNECTIONS * 1000,
        }
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
            for result in (mariadb(Path(tmp)), redis_server(Path(tmp), False), redis_server(Path(tmp), True)):
                for name, value in result.items():
                    samples.setdefault(name, []).append(value)
    print("| measurement | median | min | max |\n| --- | --- | --- | --- |")
    for name, values in samples.items():
        unit = "" if "(ms)" in name else " s"
        print(f"| {name} | {statistics.median(values):.2f}{unit} | {min(values):.2f}{unit} | {max(values):.2f}{unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
