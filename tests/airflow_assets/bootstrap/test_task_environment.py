"""What a task on the worker node can see: the Celery worker's environment, which every task process
inherits (the worker forks its pool, the pool forks each task's supervisor and task process)."""

import json
import sys
import time

import psutil

from .conftest import BOOTSTRAP_DIR, free_port, run_in_unit

sys.path.insert(0, str(BOOTSTRAP_DIR))
import airflow_secret  # noqa: E402
import node  # noqa: E402

from rehearsal.services import RehearsalRedis  # noqa: E402
from rehearsal.supervisor import Supervisor  # noqa: E402

CONF_PROBE = """
import json
from airflow.configuration import conf
print("CONF", json.dumps({
    "sql_alchemy_conn": conf.get("database", "sql_alchemy_conn"),
    "fernet_key": conf.get("core", "fernet_key", fallback=""),
    "jwt_secret": conf.get("api_auth", "jwt_secret", fallback=""),
    "result_backend": conf.get("celery", "result_backend"),
}))
"""


def _forbidden(node_secrets) -> dict[str, str]:
    """The values a task must not be able to read: master DB password, JWT secret, Fernet key (and its seed)."""
    seed = node_secrets.values["FERNET_KEY_SECRET_ID"]
    return {
        "metadata DB master password": json.loads(node_secrets.values["DB_SECRET_ID"])["password"],
        "JWT signing secret": node_secrets.values["JWT_SECRET_SECRET_ID"],
        "Fernet key": airflow_secret.fernet_key(seed),
        "Fernet seed": seed,
        "admin password": node_secrets.values["ADMIN_PASSWORD_SECRET_ID"],
    }


def _leaks(text: str, forbidden: dict[str, str]) -> list[str]:
    return [name for name, value in forbidden.items() if value in text]


def _process_environ(pid: int) -> str:
    return open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")


def _worker_node(bootstrap, node_secrets, redis_port: int) -> None:
    bootstrap.params.update(
        node_secrets.params,
        AIRFLOW_ROLE="worker",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(redis_port),
        REDIS_TLS="false",
        WORKER_CONCURRENCY="1",
        FLOWER_PORT=str(free_port()),
        WORKER_LOG_SERVER_PORT=str(free_port()),
    )
    result = bootstrap.run("configure")
    assert result.returncode == 0, result.stderr


def test_worker_and_its_task_processes_hold_no_db_url_jwt_secret_or_fernet_key(bootstrap, node_secrets, tmp_path):
    redis_port = free_port()
    redis = RehearsalRedis(tmp_path / "redis", node_secrets.values["REDIS_AUTH_SECRET_ID"], redis_port)
    redis.start()
    supervisor = Supervisor(tmp_path / "logs")
    try:
        _worker_node(bootstrap, node_secrets, redis_port)
        forbidden = _forbidden(node_secrets)
        key = supervisor.start("worker", bootstrap.home / "units" / "airflow-celery-worker.service")
        flower = supervisor.start("worker", bootstrap.home / "units" / "airflow-flower.service")
        # The Celery pool processes are forked once the worker has its broker and result backend; each
        # task's supervisor and task process are forked from them, with this same environment.
        deadline = time.monotonic() + 120
        pool: list[psutil.Process] = []
        while time.monotonic() < deadline and not pool:
            pid = supervisor.pid(key)
            assert pid is not None, supervisor.log_path(key).read_text()[-3000:]
            pool = [
                p
                for p in psutil.Process(pid).children(recursive=True)
                if "celery" in " ".join(p.cmdline()) or "airflow" in " ".join(p.cmdline())
            ]
            time.sleep(1)
        log = supervisor.log_path(key).read_text()
        assert pool, f"the Celery worker forked no pool process:\n{log[-3000:]}"
        for process in [psutil.Process(supervisor.pid(key)), *pool]:
            assert _leaks(_process_environ(process.pid), forbidden) == [], process.cmdline()
        # Task code can also ask Airflow's config, which would run any *_CMD it finds.
        probe = run_in_unit(bootstrap, "celery-worker", [sys.executable, "-c", CONF_PROBE])
        assert probe.returncode == 0, probe.stderr[-3000:]
        seen = probe.stdout.split("CONF ", 1)[1].splitlines()[0]
        assert _leaks(seen, forbidden) == [], seen
        assert json.loads(seen)["result_backend"].startswith("redis://")
        # The worker node is healthy all the same (its own health gate: Celery ping and Flower).
        checks = node.HealthChecks(node.Node.from_env_file(bootstrap.node_env))
        for check, unit in ((checks.celery_worker, key), (checks.flower, flower)):
            problem = check()
            for _ in range(20):
                if problem is None:
                    break
                time.sleep(3)
                problem = check()
            assert problem is None, problem + supervisor.log_path(unit).read_text()[-3000:]
    finally:
        supervisor.stop_all()
        redis.stop()


def test_worker_start_phase_does_not_wait_for_a_database_it_cannot_reach(bootstrap, node_secrets):
    _worker_node(bootstrap, node_secrets, free_port())
    bootstrap.params["MIGRATION_WAIT_SECONDS"] = "5"
    result = bootstrap.run("start")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "nothing to wait for" in result.stderr
