"""Stopping or restarting the Celery worker's unit lets running tasks finish (warm shutdown).

systemd's default KillMode=control-group SIGTERMs every process of the unit, the prefork children that
run the tasks included, and those tasks die with WorkerLostError. The test runs a real Celery worker
and a real Redis broker under the rendered unit's stop settings, stopped by the rehearsal supervisor
the way systemd stops that KillMode.
"""

from __future__ import annotations

import secrets
import shlex
import sys
import time
from pathlib import Path

import pytest

from .conftest import BOOTSTRAP_DIR

sys.path.insert(0, str(BOOTSTRAP_DIR.parent.parent))
from rehearsal.nodes import free_port  # noqa: E402
from rehearsal.services import MissingPrerequisite, RehearsalRedis  # noqa: E402
from rehearsal.supervisor import Supervisor, Unit  # noqa: E402

TASK_SECONDS = 6
PROBE_APP = """
import time
from celery import Celery

app = Celery("probe")
# As Airflow's Celery config: a task is acknowledged when it ends, one task per free process.
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 1


@app.task(name="probe.sleep_then_mark")
def sleep_then_mark(path, seconds):
    open(path + ".started", "w").close()
    time.sleep(seconds)
    with open(path, "w") as marker:
        marker.write("done")
"""


@pytest.fixture
def broker(tmp_path):
    password = secrets.token_hex(16)
    redis = RehearsalRedis(tmp_path / "redis", password, free_port())
    try:
        redis.start()
    except MissingPrerequisite as error:
        pytest.skip(str(error))
    try:
        yield f"redis://:{password}@127.0.0.1:{redis.port}/0"
    finally:
        redis.stop()


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.2)


def worker_unit_running_celery(rendered: Path, app_dir: Path, broker_url: str) -> Path:
    """The rendered worker unit with Airflow's command swapped for a plain Celery worker of the probe app."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "probe_app",
        "-b",
        broker_url,
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        "INFO",
    ]
    lines = []
    for line in rendered.read_text().splitlines():
        if line.startswith("ExecStart="):
            line = f"ExecStart={shlex.join(command)}"
        elif line.startswith("WorkingDirectory="):
            line = f"WorkingDirectory={app_dir}"
        elif line.startswith("ExecStartPre="):
            continue
        lines.append(line)
    unit = app_dir / rendered.name
    unit.write_text("\n".join(lines) + "\n")
    return unit


def test_stopping_the_worker_unit_lets_the_running_task_finish(bootstrap, broker, tmp_path):
    from celery import Celery

    bootstrap.params["AIRFLOW_ROLE"] = "worker"
    result = bootstrap.run("configure")
    assert result.returncode == 0, result.stderr
    rendered = bootstrap.home / "units" / "airflow-celery-worker.service"
    stop_settings = Unit.parse(rendered)
    assert stop_settings.timeout_stop_sec > TASK_SECONDS * 5, "the test's task must be short against TimeoutStopSec"

    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "probe_app.py").write_text(PROBE_APP)
    unit = worker_unit_running_celery(rendered, app_dir, broker)
    supervisor = Supervisor(tmp_path / "logs", poll_interval=0.2)
    client = Celery(broker=broker)
    marker = tmp_path / "task-done"
    try:
        key = supervisor.start("worker", unit)
        client.send_task("probe.sleep_then_mark", args=[str(marker), TASK_SECONDS])
        _wait(lambda: Path(f"{marker}.started").exists(), 60, "the task start")
        stop_started = time.monotonic()
        supervisor.stop(key)  # systemctl stop airflow-celery-worker (a config restart begins the same way)
        stopped_after = time.monotonic() - stop_started
    finally:
        client.close()
        supervisor.stop_all(timeout=10)
    log = supervisor.log_path(key).read_text(errors="replace")
    assert marker.exists(), f"the running task died when the unit stopped ({stopped_after:.1f}s):\n{log[-3000:]}"
    assert "WorkerLostError" not in log
    assert supervisor.pid(key) is None
    assert stopped_after < stop_settings.timeout_stop_sec
