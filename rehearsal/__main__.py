"""`python -m rehearsal --profile embedded|cluster`: run the assignment locally and check the outcome."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from rehearsal.airflow_api import AirflowApiError
from rehearsal.nodes import BootstrapError
from rehearsal.run import PROFILES, Rehearsal, RehearsalFailed
from rehearsal.services import MissingPrerequisite


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__)
    parser.add_argument("--profile", choices=PROFILES, default="embedded",
                        help="embedded: one node, SQLite, LocalExecutor; cluster: three nodes, MariaDB, Redis, Celery")
    parser.add_argument("--scheduler-count", type=int, choices=(1, 2), default=1,
                        help="cluster profile: 2 runs a second scheduler on the api-server node")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and the database")
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for dag_1")
    return parser.parse_args(argv)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("werkzeug", "rehearsal.aws", "botocore", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        with Rehearsal(args.profile, workdir=args.workdir, scheduler_count=args.scheduler_count,
                       keep=args.keep) as rehearsal:
            print(f"rehearsal: nodes healthy after {time.monotonic() - started:.0f}s, triggering dag_1", file=sys.stderr)
            run = rehearsal.wait(rehearsal.trigger(), timeout=args.timeout)
            problems = rehearsal.success_problems(run)
            if problems:
                print(run.log_report(), file=sys.stderr)
                print(f"rehearsal: FAILED {run.summary(args.profile)}: {'; '.join(problems)}")
                return 1
            print(f"rehearsal: ok {run.summary(args.profile)} total={time.monotonic() - started:.0f}s")
            return 0
    except (MissingPrerequisite, RehearsalFailed, BootstrapError, AirflowApiError) as error:
        print(f"rehearsal: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rehearsal: interrupted, stopped every process it started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
