"""Rehearsal measurements (not a test): node bootstrap per role, uv vs pip, scheduling lags, wall time.

    python bench/rehearsal.py [--runs 3] [--profile cluster] [--skip-install-compare]

Prints a Markdown table (docs/rehearsal.md holds the last one). Targets: each lag <= 5 s, node
bootstrap <= 90 s.
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

from rehearsal.run import Rehearsal  # noqa: E402

REQUIREMENTS = REPO_ROOT / "requirements-airflow.txt"


def timed(command: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.monotonic() - started


def install_comparison() -> dict[str, float]:
    """The node's install (requirements-airflow.txt into a fresh venv) with uv and with pip; warm caches."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        uv_venv, pip_venv = Path(tmp) / "uv", Path(tmp) / "pip"
        subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(uv_venv)], check=True)
        uv_seconds = timed(
            ["uv", "pip", "install", "-q", "-r", str(REQUIREMENTS)], env={**os.environ, "VIRTUAL_ENV": str(uv_venv)}
        )
        subprocess.run(["uv", "venv", "-q", "--seed", "--python", "3.11", str(pip_venv)], check=True)
        pip_seconds = timed([str(pip_venv / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)])
    return {"uv": uv_seconds, "pip": pip_seconds}


def one_run(profile: str) -> dict[str, float]:
    started = time.monotonic()
    with Rehearsal(profile, scheduler_count=1) as rehearsal:
        run = rehearsal.wait(rehearsal.trigger())
        problems = rehearsal.success_problems(run)
        if problems:
            raise SystemExit(f"bench: run failed: {problems}")
        row = {
            "dag_1": run.dag_1_seconds,
            "dag_2": run.dag_2_seconds,
            "trigger_lag": run.trigger_lag,
            "sensor_lag": run.sensor_lag,
        }
        for node, phases in rehearsal.bootstrap_seconds.items():
            for phase in ("install", "configure"):
                row[f"{node} {phase}"] = phases.get(phase, 0.0)
            row[f"{node} start+healthy"] = phases.get("start", 0.0) + phases.get("health", 0.0)
    row["wall"] = time.monotonic() - started
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", choices=("embedded", "cluster"), default="cluster")
    parser.add_argument("--skip-install-compare", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [one_run(args.profile) for _ in range(args.runs)]
    print(f"| metric ({args.profile}, {args.runs} runs) | min | median | max |")
    print("| --- | --- | --- | --- |")
    for key in rows[0]:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            print(f"| {key} (s) | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} |")
    if not args.skip_install_compare:
        installs = install_comparison()
        print(f"| fresh venv install, uv (s) | {installs['uv']:.1f} | | |")
        print(f"| fresh venv install, pip (s) | {installs['pip']:.1f} | | |")
        print(f"| pip / uv | {installs['pip'] / installs['uv']:.1f}x | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
