"""What each AWS rule the rehearsal enforces costs in wall time (not a test).

    python bench/enforcement_costs.py [--repeat 3]

- IAM: bench/iam_enforcement.py's LocalAws start with the gate off / on (template cached) and a
  HeadObject per call through the gate or not.
- Spark line: the sort job on the real dataset under spark-submit of the project's pyspark and of the
  EMR release's line (.venv-emr, Spark 3.5), i.e. what the second interpreter adds to a step.
- TLS: a metadata-DB connection (connect, SELECT 1, close) to the TLS-only MariaDB with the CA
  verified, against a plain one to the local MariaDB on :3306.
- DNS gate: a process started in a node's view of the private zone (its own mount namespace with the
  rehearsal's hosts file over /etc/hosts, rehearsal/private_zone.py) against a plain one.
Prints a Markdown table of medians (bench/README.md holds the last one). The start order (waves vs
all nodes at once) is read off bench/rehearsal.py's per-node times, see bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import iam_enforcement  # noqa: E402
import pymysql  # noqa: E402

from rehearsal.aws import stack_template  # noqa: E402
from rehearsal.aws.local_aws import NODE_ROLE_ACCESS_KEY  # noqa: E402
from rehearsal.aws.seed import SEEDED_RELEASE_LABEL  # noqa: E402
from rehearsal.aws.spark_env import find_spark_environment  # noqa: E402
from rehearsal.nodes import free_port  # noqa: E402
from rehearsal.private_zone import PrivateZone  # noqa: E402
from rehearsal.services import TlsOnlyMariaDb  # noqa: E402

DATASET = iam_enforcement.DATASET
JOB = REPO_ROOT / "emr_steps" / "sort_by_spending_score.py"
CONNECTIONS = 50
PROCESSES = 20
PARTS = ("iam", "spark", "tls", "dns")


def iam_rows(workdir: Path) -> list[tuple[str, float, float]]:
    rows = []
    stack_template.synthesized_stack()  # synthesized (or read from the cache) once, outside the timings
    for label, enforce in (("IAM gate off", False), ("IAM gate on (template cached)", True)):
        seconds, aws = iam_enforcement.start(workdir / label.replace(" ", "-"), enforce)
        try:
            rows.append((f"{label}: LocalAws start (s)", seconds, 0.0))
            rows.append(
                (
                    f"{label}: HeadObject per call (ms)",
                    iam_enforcement.per_call(aws, NODE_ROLE_ACCESS_KEY if enforce else "rehearsal-admin"),
                    0.0,
                )
            )
        finally:
            aws.stop()
    return rows


def spark_seconds(release_label: str | None, workdir: Path) -> float:
    spark = find_spark_environment(release_label)
    output = workdir / f"out-{release_label or 'project'}-{time.monotonic_ns()}"
    started = time.monotonic()
    subprocess.run(
        [
            str(spark.spark_submit),
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            str(JOB),
            "--source-csv",
            str(DATASET),
            "--output",
            str(output),
        ],
        env=spark.process_env(dict(os.environ)),
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.monotonic() - started


def connect_ms(login: dict) -> float:
    started = time.monotonic()
    for _ in range(CONNECTIONS):
        connection = pymysql.connect(**login)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.close()
    return (time.monotonic() - started) / CONNECTIONS * 1000


def tls_rows(workdir: Path, repeat: int) -> list[tuple[str, float, float]]:
    server = TlsOnlyMariaDb(workdir / "mariadb", free_port())
    server.start()
    try:
        tls = {"host": "127.0.0.1", "port": server.port, "user": "root", "ssl": {"ca": str(server.ca_bundle)}}
        plain = {"host": "127.0.0.1", "port": 3306, "user": "root"}
        on = [connect_ms(tls) for _ in range(repeat)]
        off = [connect_ms(plain) for _ in range(repeat)]
    finally:
        server.stop()
    return [
        ("DB connection, verified TLS (ms)", statistics.median(on), max(on)),
        ("DB connection, plain (ms)", statistics.median(off), max(off)),
    ]


def spawn_ms(command_prefix: tuple[str, ...]) -> float:
    started = time.monotonic()
    for _ in range(PROCESSES):
        subprocess.run([*command_prefix, "true"], check=True)
    return (time.monotonic() - started) / PROCESSES * 1000


def dns_rows(workdir: Path, repeat: int) -> list[tuple[str, float, float]]:
    started = time.monotonic()
    zone = PrivateZone(workdir / "hosts", []).start()  # the copy of /etc/hosts and the probe
    setup = (time.monotonic() - started) * 1000
    gated = [spawn_ms(zone.command_prefix) for _ in range(repeat)]
    plain = [spawn_ms(()) for _ in range(repeat)]
    return [
        ("DNS gate: zone setup, probe included (ms)", setup, 0.0),
        ("process start, in the node's view of the zone (ms)", statistics.median(gated), max(gated)),
        ("process start, plain (ms)", statistics.median(plain), max(plain)),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=PARTS, action="append", help="measure only these (default: all)")
    args = parser.parse_args()
    parts = args.only or PARTS
    logging.basicConfig(level=logging.WARNING)
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-enforcement-") as tmp:
        workdir = Path(tmp)
        if "iam" in parts:
            rows += iam_rows(workdir)
        for label, release in (
            ("sort job, project pyspark (s)", None),
            (f"sort job, {SEEDED_RELEASE_LABEL} line (s)", SEEDED_RELEASE_LABEL),
        ):
            if "spark" in parts:
                runs = [spark_seconds(release, workdir) for _ in range(args.repeat)]
                rows.append((label, statistics.median(runs), max(runs)))
        if "tls" in parts:
            rows += tls_rows(workdir, args.repeat)
        if "dns" in parts:
            rows += dns_rows(workdir, args.repeat)
    print(f"| measurement ({args.repeat} runs where repeated) | median | max |")
    print("| --- | --- | --- |")
    for label, median, most in rows:
        print(f"| {label} | {median:.1f} | {most:.1f} |" if most else f"| {label} | {median:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
