"""The rehearsal's Airflow nodes: node.env files per profile, and the bootstrap phases run on them."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stacks.config import REPO_ROOT

BOOTSTRAP_DIR = REPO_ROOT / "airflow_assets" / "bootstrap"
DAGS_SOURCE_DIR = REPO_ROOT / "airflow_assets" / "dags"
# Rehearsal tuning: pick work up within seconds instead of EC2's calmer defaults.
FAST_SCHEDULING = {
    "SCHEDULER_HEARTBEAT_SEC": "1",
    "DAG_REFRESH_INTERVAL": "10",
    "MIN_FILE_PROCESS_INTERVAL": "10",
    "TASK_HEARTBEAT_TIMEOUT": "30",
    "SCHEDULER_HEALTH_THRESHOLD": "15",
    "ORPHANED_TASKS_CHECK_INTERVAL": "15",
    "HEALTH_TIMEOUT_SECONDS": "300",
    "MIGRATION_WAIT_SECONDS": "600",
}


class BootstrapError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RehearsalHost:
    """One rehearsal 'host': its own directory, AIRFLOW_HOME, node.env and rendered units."""

    name: str
    root: Path
    params: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return self.params["AIRFLOW_ROLE"]

    @property
    def node_env_file(self) -> Path:
        return self.root / "node.env"

    @property
    def home(self) -> Path:
        return Path(self.params["AIRFLOW_HOME"])

    @property
    def log_file(self) -> Path:
        return self.root / "bootstrap.log"

    def write_node_env(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = []
        for key, value in self.params.items():
            # contracts §4: JSON values single-quoted, so bash and systemd read the file alike.
            lines.append(f"{key}='{value}'" if value.startswith("{") else f"{key}={value}")
        self.node_env_file.write_text("\n".join(lines) + "\n")

    def phase(self, phase: str) -> None:
        started = time.monotonic()
        # Like cfn-init: the machine's environment (proxy/CA settings for uv), nothing Airflow would read.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env["NODE_ENV_FILE"] = str(self.node_env_file)
        # uv must find the venv's interpreter when AIRFLOW_VENV is the project venv.
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        with self.log_file.open("a") as log:
            log.write(f"$ {self.role}.sh {phase}\n")
            log.flush()
            result = subprocess.run(
                ["bash", str(BOOTSTRAP_DIR / f"{self.role}.sh"), phase],
                env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
            )
        self.timings[phase] = time.monotonic() - started
        if result.returncode:
            tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
            raise BootstrapError(f"{self.name}: {self.role}.sh {phase} exited {result.returncode}\n{tail}")

    def unit_files(self) -> list[Path]:
        env = {**os.environ, "NODE_ENV_FILE": str(self.node_env_file)}
        python = Path(self.params["AIRFLOW_VENV"]) / "bin" / "python"
        out = subprocess.run([str(python), str(BOOTSTRAP_DIR / "node.py"), "units"], env=env,
                             capture_output=True, text=True, check=True).stdout
        return [self.home / "units" / name for name in out.split()]


def common_params(aws, workdir: Path, venv: Path, poll_interval: float) -> dict[str, str]:
    pipeline = aws.pipeline_config
    pipeline["poll_interval_seconds"] = poll_interval
    logs_bucket = pipeline["log_uri"].removeprefix("s3://").split("/", 1)[0]
    return {
        "STAGE": "dev",
        "AWS_REGION": aws.region,
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AIRFLOW_VENV": str(venv),
        "DAGS_SOURCE_DIR": str(DAGS_SOURCE_DIR),
        "DAGS_FOLDER": str(workdir / "efs" / "dags"),
        "REMOTE_LOG_URI": f"s3://{logs_bucket}/airflow/",
        "EMR_PIPELINE_JSON": json.dumps(pipeline, separators=(",", ":")),
        "PROCESS_MANAGER": "external",
        **aws.secret_ids,
        **FAST_SCHEDULING,
    }


def _node(name: str, workdir: Path, params: dict[str, str]) -> RehearsalHost:
    root = workdir / "nodes" / name
    home = root / "airflow"
    return RehearsalHost(name, root, {**params, "AIRFLOW_HOME": str(home)})


def embedded_nodes(aws, workdir: Path, venv: Path, poll_interval: float, api_port: int | None = None) -> list[RehearsalHost]:
    api_port = api_port or free_port()
    params = {
        **common_params(aws, workdir, venv, poll_interval),
        "AIRFLOW_ROLE": "scheduler",
        "COLOCATED_ROLES": "api-server",
        "EXECUTOR": "LocalExecutor",
        "DB_KIND": "sqlite",
        "API_SERVER_HOST": "127.0.0.1",
        "API_SERVER_BIND": "127.0.0.1",
        "API_SERVER_PORT": str(api_port),
        "API_SERVER_WORKERS": "1",
        "SCHEDULER_HEALTH_PORT": str(free_port()),
        "WORKER_LOG_SERVER_PORT": str(free_port()),
        "TRIGGERER_LOG_SERVER_PORT": str(free_port()),
    }
    return [_node("embedded", workdir, params)]


def cluster_nodes(aws, workdir: Path, venv: Path, poll_interval: float, *, db_name: str, redis_port: int,
                  scheduler_count: int, api_port: int | None = None, flower_port: int | None = None) -> list[RehearsalHost]:
    api_port = api_port or free_port()
    shared = {
        **common_params(aws, workdir, venv, poll_interval),
        "EXECUTOR": "CeleryExecutor",
        "SCHEDULER_COUNT": str(scheduler_count),
        "API_SERVER_HOST": "127.0.0.1",
        "API_SERVER_PORT": str(api_port),
        "DB_KIND": "mysql",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "3306",
        "DB_NAME": db_name,
        "DB_TLS": "false",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "REDIS_TLS": "false",
    }
    # Loopback stands in for three hosts, so every listening port is unique per node.
    return [
        _node("scheduler", workdir, {**shared, "AIRFLOW_ROLE": "scheduler",
                                     "SCHEDULER_HEALTH_PORT": str(free_port()),
                                     "TRIGGERER_LOG_SERVER_PORT": str(free_port())}),
        _node("api-server", workdir, {**shared, "AIRFLOW_ROLE": "api-server", "API_SERVER_BIND": "127.0.0.1",
                                      "API_SERVER_WORKERS": "1", "SCHEDULER_HEALTH_PORT": str(free_port())}),
        _node("worker", workdir, {**shared, "AIRFLOW_ROLE": "worker", "WORKER_CONCURRENCY": "4",
                                  "FLOWER_PORT": str(flower_port or free_port()), "WORKER_LOG_SERVER_PORT": str(free_port())}),
    ]


def describe(node: RehearsalHost) -> str:
    return f"{node.name}: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in node.params.items() if "SECRET" not in k)
