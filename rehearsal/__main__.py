"""`python -m rehearsal`: run the assignment locally, end to end, on the sample or your own CSV, and check it.

Exit status: 0 the run did what the assignment asks; 1 it did not, or the machine lacks something;
2 bad arguments (an --input that is not a readable .csv file, a busy --port), before anything starts;
130 interrupted before the run finished.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from rehearsal.airflow_api import AirflowApiError
from rehearsal.nodes import REPO_ROOT, BootstrapError
from rehearsal.private_zone import MissingRecord, PrivateZoneUnavailable
from rehearsal.run import PROFILES, Rehearsal, RehearsalFailed, TaskProgress
from rehearsal.services import MissingPrerequisite, port_open
from stacks.config import DATASET_SUFFIX

# --serve listens where people expect Airflow and Flower: their own default ports.
SERVE_API_PORT = 8080
SERVE_FLOWER_PORT = 5555
# Kept work directories go where `make clean` and .gitignore already look.
KEPT_WORKDIRS = REPO_ROOT / ".rehearsal"


def _readable_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: not a regular file")
    # The stack refuses a dataset_path of another kind; the rehearsal runs what a deployment could.
    if path.suffix.lower() != DATASET_SUFFIX:
        raise argparse.ArgumentTypeError(f"{text}: not a {DATASET_SUFFIX} file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"{text}: cannot be read ({error.strerror})") from None
    return path.resolve()


def _port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: not a TCP port")
    return port


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="embedded",
        help="embedded: one node, SQLite, LocalExecutor; cluster: three nodes, MariaDB and Redis (TLS only), Celery",
    )
    parser.add_argument(
        "--input",
        type=_readable_file,
        metavar="PATH",
        help="CSV to run the assignment on (default: the sample the stack uploads)",
    )
    parser.add_argument(
        "--scheduler-count",
        type=int,
        choices=(1, 2),
        default=1,
        help="cluster profile: 2 runs a second scheduler on the api-server node",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"keep the work directory (output Parquet, logs, the cluster's MariaDB data); "
        f"default directory {KEPT_WORKDIRS.relative_to(REPO_ROOT)}/<profile>-<time>",
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temporary directory, deleted at exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for dag_1")
    parser.add_argument(
        "--serve", action="store_true", help="after the checked run keep Airflow up (UI and REST API) until Ctrl-C"
    )
    parser.add_argument("--port", type=_port, default=SERVE_API_PORT, help="--serve: the api-server's port")
    parser.add_argument(
        "--flower-port", type=_port, default=SERVE_FLOWER_PORT, help="--serve, cluster profile: Flower's port"
    )
    args = parser.parse_args(argv)
    if args.serve:
        ports = [("--port", args.port)] + ([("--flower-port", args.flower_port)] if args.profile == "cluster" else [])
        for option, port in ports:
            if port_open("127.0.0.1", port):
                parser.error(f"{option} {port}: something already listens on 127.0.0.1:{port}; choose another port")
    return args


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"rehearsal: {message}", file=sys.stderr, flush=True)


def _count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def main(argv=None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("werkzeug", "rehearsal.aws", "botocore", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir
    if workdir is None and args.keep:
        workdir = KEPT_WORKDIRS / f"{args.profile}-{datetime.now():%Y%m%d-%H%M%S}"
    options = {"dataset": args.input} if args.input else {}
    if args.serve:
        options |= {"api_port": args.port, "flower_port": args.flower_port if args.profile == "cluster" else None}
    started = time.monotonic()
    status = None
    try:
        with Rehearsal(
            args.profile, workdir=workdir, scheduler_count=args.scheduler_count, keep=args.keep, **options
        ) as rehearsal:
            status = _run_once(rehearsal, args, started)
            if args.serve:
                _serve(rehearsal)
    except (
        MissingPrerequisite,
        PrivateZoneUnavailable,
        MissingRecord,
        RehearsalFailed,
        BootstrapError,
        AirflowApiError,
    ) as error:
        print(f"rehearsal: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if status is None:
            _say("interrupted, stopped every process it started")
            return 130
        _say("stopped every process it started")
    return status


def _run_once(rehearsal: Rehearsal, args, started: float) -> int:
    _say(f"nodes healthy after {time.monotonic() - started:.0f}s, triggering dag_1")
    run_id = rehearsal.trigger()
    _say(f"dag_1 run {run_id} started; a line per finished task follows")
    progress = TaskProgress(rehearsal.api, _say)
    run = rehearsal.wait(run_id, timeout=args.timeout, on_poll=lambda _run: progress.poll(run_id))
    progress.poll(run_id)
    problems = rehearsal.success_problems(run)
    rows_out = rehearsal.output_rows()
    facts = (
        f"input={args.input or 'sample ' + rehearsal.dataset.name} rows_in={_count(rehearsal.input_rows())} "
        f"rows_out={_count(rows_out)} {rehearsal.enforcement_facts()}"
    )
    if rehearsal.keep or args.workdir:
        if rows_out is not None:
            facts += f" output={rehearsal.save_output()}"
        _say(
            f"logs: {rehearsal.workdir / 'logs'} (Airflow processes), {rehearsal.aws.workdir / 'emr'} (EMR steps), "
            f"{rehearsal.workdir / 'nodes'} (bootstrap)"
        )
        for path in rehearsal.save_mails(run):
            _say(f"outcome mail: {path}")
    else:
        _say(f"output and logs were under {rehearsal.workdir}, deleted at exit; --keep keeps them")
    total = f"total={time.monotonic() - started:.0f}s"
    if problems:
        print(run.log_report(), file=sys.stderr)
        causes = "; ".join(run.causes) or "see the log tails above"
        print(
            f"rehearsal: FAILED {run.summary(rehearsal.profile)} {facts} {total}: cause: {causes}; "
            f"{'; '.join(problems)}",
            flush=True,
        )
        return 1
    print(f"rehearsal: ok {run.summary(rehearsal.profile)} {facts} {total}", flush=True)
    return 0


def _serve(rehearsal: Rehearsal) -> None:
    _say(f"serving Airflow at {rehearsal.api_url} (UI and REST API /api/v2)")
    _say(f"user {rehearsal.admin_user}, password in {rehearsal.passwords_file}")
    if rehearsal.flower_url:
        _say(
            f"Flower at {rehearsal.flower_url} (UI and REST API /api), user {rehearsal.admin_user}, "
            f"password in {rehearsal.flower_passwords_file}"
        )
    _say("Ctrl-C stops every process")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
