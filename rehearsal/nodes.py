"""The rehearsal's Airflow nodes: node.env files per profile, and the bootstrap phases run on them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from airflow_assets.bootstrap import node_env_file
from rehearsal.aws.seed import pipeline_tuning
from rehearsal.aws.stack_template import PIPELINE_PARAMETER, TemplateNode, synthesized_stack, template_nodes
from rehearsal.node_env_template import (
    NodeEnvMismatch,
    TemplateEnv,
    check,
    emulated_references,
    rehearsal_env,
    template_env,
)
from stacks import s3_layout
from stacks.config import REPO_ROOT

BOOTSTRAP_DIR = REPO_ROOT / "airflow_assets" / "bootstrap"
DAGS_SOURCE_DIR = REPO_ROOT / "airflow_assets" / "dags"
# Rehearsal tuning: pick work up within seconds instead of EC2's calmer defaults. The cluster's nodes
# take these only where the template sets no value (rehearsal/node_env_template.py LOCAL_VALUES).
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
WORKER_CONCURRENCY = "4"  # where the template sets none: the rehearsal machine has fewer cores than EC2's
# Variables the bootstrap gets besides the template's cfn-init `env` map (cfn-init gives a command
# exactly that map), each because the rehearsal's machine is not the node:
LOCAL_BOOTSTRAP_ENV = (
    # NODE_ENV_FILE (in the map) is replaced by the node's own file, as /etc/airflow is one per machine.
    # PATH gets uv's directory in front: on EC2 the bootstrap pip-installs the pinned uv where none is on
    # PATH; here the machine's uv (the Makefile's same pin) stands in, without a download per node.
    "PATH",
    # The rehearsal keeps every temporary file in its workdir instead of the machine's /tmp.
    "TMPDIR",
    # The machine's way out to the package index (EC2 reaches it through the NAT gateway without them).
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "UV_CACHE_DIR",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
)


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
    template: TemplateNode
    # The template's node.env for this role with the emulator's resources, which `params` must equal but
    # for rehearsal/node_env_template.py LOCAL_VALUES. None for a shape no stage deploys (the embedded
    # profile: sqlite, api-server colocated).
    template_env: TemplateEnv | None = None
    timings: dict[str, float] = field(default_factory=dict)
    bootstrap_dir: Path = BOOTSTRAP_DIR
    # What every process of the node runs under: its view of the private DNS zone (rehearsal/private_zone.py).
    command_prefix: tuple[str, ...] = ()

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
        if self.template_env is not None:
            try:
                check(self.name, self.params, self.template_env)
            except NodeEnvMismatch as error:
                raise BootstrapError(str(error)) from None
        self.root.mkdir(parents=True, exist_ok=True)
        self.node_env_file.write_text(node_env_file.render(self.params))

    def bootstrap_env(self) -> dict[str, str]:
        """The template's cfn-init `env` map of this role's bootstrap command, and LOCAL_BOOTSTRAP_ENV."""
        env = dict(self.template.command_env)
        if "NODE_ENV_FILE" not in env:
            raise BootstrapError(f"{self.name}: the template's bootstrap command env has no NODE_ENV_FILE")
        env["NODE_ENV_FILE"] = str(self.node_env_file)
        uv = shutil.which("uv")
        if uv:
            env["PATH"] = f"{Path(uv).parent}:{env.get('PATH', '')}"
        env.update({key: os.environ[key] for key in LOCAL_BOOTSTRAP_ENV if key != "PATH" and key in os.environ})
        return env

    def phase(self, phase: str) -> None:
        started = time.monotonic()
        with self.log_file.open("a") as log:
            log.write(f"$ {self.role}.sh {phase}\n")
            log.flush()
            result = subprocess.run(
                [*self.command_prefix, "bash", str(self.bootstrap_dir / f"{self.role}.sh"), phase],
                env=self.bootstrap_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        self.timings[phase] = time.monotonic() - started
        if result.returncode:
            tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
            raise BootstrapError(f"{self.name}: {self.role}.sh {phase} exited {result.returncode}\n{tail}")

    def unit_files(self) -> list[Path]:
        env = {**os.environ, "NODE_ENV_FILE": str(self.node_env_file)}
        python = Path(self.params["AIRFLOW_VENV"]) / "bin" / "python"
        out = subprocess.run(
            [str(python), str(BOOTSTRAP_DIR / "node.py"), "units"], env=env, capture_output=True, text=True, check=True
        ).stdout
        return [self.home / "units" / name for name in out.split()]


def common_params(aws, workdir: Path, venv: Path, poll_interval: float) -> dict[str, str]:
    template = template_nodes(synthesized_stack().template)["scheduler"].node_env
    pipeline = aws.pipeline_config
    pipeline.update(pipeline_tuning(poll_interval))
    logs_bucket = pipeline["log_uri"].removeprefix("s3://").split("/", 1)[0]
    return {
        "STAGE": template["STAGE"],  # the stage the synthesized stack renders (cdk.json default)
        "AWS_REGION": aws.region,
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AIRFLOW_VENV": str(venv),
        "AIRFLOW_REQUIREMENTS": str(REPO_ROOT / "requirements-airflow.txt"),
        # No service user: the rehearsal creates no system users on the machine it runs on. The shared
        # DAG folder still forces the template's uid/gid on its files (rehearsal/access_point.py).
        "AIRFLOW_USER": "",
        "AIRFLOW_UID": template["AIRFLOW_UID"],
        "AIRFLOW_GID": template["AIRFLOW_GID"],
        "DAGS_SOURCE_DIR": str(DAGS_SOURCE_DIR),
        "DAGS_FOLDER": str(workdir / "efs" / "dags"),
        "REMOTE_LOG_URI": s3_layout.s3_uri(logs_bucket, s3_layout.AIRFLOW_LOG_PREFIX),
        "EMR_PIPELINE_JSON": json.dumps(pipeline, separators=(",", ":")),
        "PROCESS_MANAGER": "external",
        **aws.secret_ids,
        **FAST_SCHEDULING,
    }


def _embedded_node(name: str, workdir: Path, params: dict[str, str]) -> RehearsalHost:
    root = workdir / "nodes" / name
    template = template_nodes(synthesized_stack().template)[params["AIRFLOW_ROLE"]]
    return RehearsalHost(name, root, {**params, "AIRFLOW_HOME": str(root / "airflow")}, template)


def template_db_name() -> str:
    """The database the template's nodes use (the run's own MariaDB server creates it)."""
    return template_nodes(synthesized_stack().template)["scheduler"].node_env["DB_NAME"]


def embedded_nodes(
    aws, workdir: Path, venv: Path, poll_interval: float, api_port: int | None = None
) -> list[RehearsalHost]:
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
    return [_embedded_node("embedded", workdir, params)]


def cluster_nodes(
    aws,
    workdir: Path,
    venv: Path,
    poll_interval: float,
    *,
    db_port: int,
    db_ca_bundle: Path,
    redis_port: int,
    redis_ca_bundle: Path,
    scheduler_count: int,
    api_port: int | None = None,
    flower_port: int | None = None,
) -> list[RehearsalHost]:
    """Each node's node.env is the one the synthesized template renders for its role, references bound to
    the emulator's resources; only endpoints, CAs, ports and local paths differ (LOCAL_VALUES): TLS to the
    database and the broker, verified, with the rehearsal's own CAs instead of the RDS bundle and the OS
    trust store."""
    stack = synthesized_stack()
    references = emulated_references(stack, aws)
    api_port = api_port or free_port()
    # As the stack hands every node the ports of the others (the api-server reads the log servers).
    ports = {
        "API_SERVER_PORT": str(api_port),
        "FLOWER_PORT": str(flower_port or free_port()),
        "WORKER_LOG_SERVER_PORT": str(free_port()),
        "TRIGGERER_LOG_SERVER_PORT": str(free_port()),
    }
    nodes = []
    for role in ("scheduler", "api-server", "worker"):
        template = template_nodes(stack.template)[role]
        expected = template_env(template, references)
        root = workdir / "nodes" / role
        pipeline = json.loads(expected.values[PIPELINE_PARAMETER])
        pipeline.update(pipeline_tuning(poll_interval))
        local = {
            **ports,
            # Loopback stands in for three hosts, so every listening port is unique per node.
            "SCHEDULER_HEALTH_PORT": str(free_port()),
            "AWS_ENDPOINT_URL": aws.endpoint_url,
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(db_port),
            "DB_CA_BUNDLE": str(db_ca_bundle),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(redis_port),
            "REDIS_CA_BUNDLE": str(redis_ca_bundle),
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW_VENV": str(venv),
            "AIRFLOW_REQUIREMENTS": str(REPO_ROOT / "requirements-airflow.txt"),
            "DAGS_SOURCE_DIR": str(DAGS_SOURCE_DIR),
            "DAGS_FOLDER": str(workdir / "efs" / "dags"),
            "AIRFLOW_USER": "",
            "PROCESS_MANAGER": "external",
            "API_SERVER_WORKERS": "1",
            "SCHEDULER_COUNT": str(scheduler_count),
            PIPELINE_PARAMETER: json.dumps(pipeline, separators=(",", ":")),
            "WORKER_CONCURRENCY": WORKER_CONCURRENCY,
            **FAST_SCHEDULING,
            **({"API_SERVER_BIND": "127.0.0.1"} if role == "api-server" else {}),
        }
        try:
            params = rehearsal_env(expected, local)
        except NodeEnvMismatch as error:
            raise BootstrapError(f"{role}: {error}") from None
        nodes.append(RehearsalHost(role, root, params, template, expected))
    return nodes


def describe(node: RehearsalHost) -> str:
    return f"{node.name}: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in node.params.items() if "SECRET" not in k)
