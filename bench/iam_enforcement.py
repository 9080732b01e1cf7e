"""What IAM enforcement costs a rehearsal start (not a test).

    python bench/iam_enforcement.py

Starts LocalAws without enforcement, then with it twice (the first synthesizes the template into an
empty cache, the second reads it from the disk cache as a new process would), and times a burst of
HeadObject calls with and without the gate. Prints a Markdown table (docs/emulator.md, "IAM", holds
the last one).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from rehearsal.aws import stack_template  # noqa: E402
from rehearsal.aws.local_aws import NODE_ROLE_ACCESS_KEY, LocalAws  # noqa: E402

DATASET = REPO_ROOT.parent / "shared" / "data" / "Mall_Customers.csv"
CALLS = 200


def start(workdir: Path, enforce: bool) -> tuple[float, LocalAws]:
    started = time.monotonic()
    aws = LocalAws(workdir, dataset=DATASET, emr_steps_dir=REPO_ROOT / "emr_steps", enforce_iam=enforce)
    aws.start()
    return time.monotonic() - started, aws


def per_call(aws: LocalAws, access_key: str) -> float:
    bucket, key = aws.pipeline_config["input_uri"].removeprefix("s3://").split("/", 1)
    s3 = aws.client("s3", access_key=access_key)
    s3.head_object(Bucket=bucket, Key=key)
    started = time.monotonic()
    for _ in range(CALLS):
        s3.head_object(Bucket=bucket, Key=key)
    return (time.monotonic() - started) / CALLS * 1000


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-iam-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # an empty template cache
        for label, enforce in (
            ("off", False),
            ("on, template not yet synthesized", True),
            ("on, template cached", True),
        ):
            stack_template.synthesized_stack.cache_clear()  # as in a new process
            seconds, aws = start(Path(tmp) / label.split(",")[0].replace(" ", "-") / str(len(rows)), enforce)
            try:
                key = NODE_ROLE_ACCESS_KEY if enforce else "rehearsal-admin"
                rows.append((label, seconds, aws.iam_report()["setup_seconds"], per_call(aws, key)))
            finally:
                aws.stop()
    print("| enforcement | LocalAws start (s) | of which IAM setup (s) | HeadObject per call (ms) |")
    print("| --- | --- | --- | --- |")
    for label, seconds, setup, call_ms in rows:
        print(f"| {label} | {seconds:.1f} | {setup:.1f} | {call_ms:.1f} |")


if __name__ == "__main__":
    main()
