"""One Airflow node, as described by node.env: its rendered configuration, its processes, its health.

The same process list drives systemd on EC2 (rendered unit files) and the local rehearsal's
supervisor (which runs those unit files), so "what does a role run, with which command" has one
source of truth: ``ROLE_PROCESSES`` and the unit template.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import node_env_file
from dotenv import dotenv_values
from metadata_db_tls import CA_BUNDLE_VARIABLE

# DEFAULTS re-exported: the connection budget renders a node from node.env's defaults.
from node_env_file import DEFAULTS, ROLES, NodeEnvError, truthy  # noqa: F401

BOOTSTRAP_DIR = Path(__file__).resolve().parent
CONFIG_DIR = BOOTSTRAP_DIR.parent / "config"
# Installed into $AIRFLOW_HOME/config (on Airflow's sys.path) and named by sql_alchemy_connect_args_async.
ASYNC_DB_TLS_MODULE = BOOTSTRAP_DIR / "metadata_db_tls.py"
# Before each api-server start: the FAB user admin with the password from the admin-password secret.
ADMIN_USER_SCRIPT = BOOTSTRAP_DIR / "admin_user.py"
ROLE_PROCESSES = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "dag-processor", "triggerer"),
    "worker": ("celery-worker", "flower"),
}
UNIT_PREFIX = "airflow-"
# How systemd stops a process (KillMode=, TimeoutStopSec=). The default, control-group, SIGTERMs every
# process of the unit at once, which suits the services that only hold state in the database.
DEFAULT_STOP = ("control-group", 60)
# A Celery worker's prefork children run the tasks: SIGTERM to all of them kills running tasks
# (WorkerLostError). mixed sends SIGTERM to the main process only, which then stops taking tasks and
# waits for the running ones (warm shutdown); systemd SIGKILLs what is left after TimeoutStopSec.
WARM_SHUTDOWN_PROCESSES = ("celery-worker",)
RESTART_MARKER = ".restart-needed"


@dataclass(frozen=True)
class Process:
    name: str
    command: list[str]
    pre_commands: list[list[str]] = field(default_factory=list)
    kill_mode: str = DEFAULT_STOP[0]
    stop_timeout_seconds: int = DEFAULT_STOP[1]

    @property
    def unit(self) -> str:
        return f"{UNIT_PREFIX}{self.name}.service"


read_node_env = node_env_file.read


class Node:
    def __init__(self, env: dict[str, str], node_env_file: Path):
        self.env = env
        self.node_env_file = node_env_file
        self.home = Path(env["AIRFLOW_HOME"])
        self.venv = Path(env["AIRFLOW_VENV"])
        self.env_file = self.home / "airflow.env"
        if env["PROCESS_MANAGER"] == "systemd":
            self.unit_dir = Path(env["SYSTEMD_UNIT_DIR"])
        else:
            self.unit_dir = self.home / "units"

    @classmethod
    def from_env_file(cls, path: Path) -> Node:
        return cls(read_node_env(path), path)

    @property
    def roles(self) -> list[str]:
        extra = [r for r in self.env["COLOCATED_ROLES"].replace(",", " ").split() if r]
        unknown = [r for r in extra if r not in ROLES]
        if unknown:
            raise NodeEnvError(f"COLOCATED_ROLES names unknown roles: {', '.join(unknown)}")
        return list(dict.fromkeys([self.env["AIRFLOW_ROLE"], *extra]))

    def runs(self, role: str) -> bool:
        return role in self.roles

    @property
    def uses_metadata_db(self) -> bool:
        """Whether this node runs a process that needs the metadata DB, the JWT secret and the Fernet key.

        A worker-only node does not: its tasks talk to the api-server's Execution API and its Celery
        results go to Redis, so neither the worker nor any task it forks holds those secrets.
        """
        return any(role != "worker" for role in self.roles)

    @property
    def migrates_database(self) -> bool:
        """Only the scheduler node migrates, so the schema is upgraded exactly once per deployment."""
        return self.env["AIRFLOW_ROLE"] == "scheduler"

    def _process_names(self) -> list[str]:
        names = [p for role in self.roles for p in ROLE_PROCESSES[role]]
        if self.runs("api-server") and self.env["SCHEDULER_COUNT"] == "2":
            names.append("scheduler")
        return list(dict.fromkeys(names))

    def secret_command(self, kind: str, secret_id: str, *options: str) -> list[str]:
        return [str(self.venv / "bin" / "python"), str(BOOTSTRAP_DIR / "airflow_secret.py"), kind, secret_id, *options]

    def processes(self) -> list[Process]:
        airflow = str(self.venv / "bin" / "airflow")
        commands = {
            "api-server": [
                airflow,
                "api-server",
                "--host",
                self.env["API_SERVER_BIND"],
                "--port",
                self.env["API_SERVER_PORT"],
                "--workers",
                self.env["API_SERVER_WORKERS"],
            ],
            "scheduler": [airflow, "scheduler"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer"],
            "celery-worker": [airflow, "celery", "worker"],
            "flower": [airflow, "celery", "flower"],
        }
        python = str(self.venv / "bin" / "python")
        pre = {
            "api-server": [
                self.secret_command("exec", "--")[:3]
                + ["--", python, str(ADMIN_USER_SCRIPT), self.env["ADMIN_PASSWORD_SECRET_ID"], "--user", "admin"]
            ],
        }
        # Flower's REST API answers only with basic auth configured: user admin with the Flower password
        # secret (the worker node's role cannot read the admin password), set for the Flower process alone.
        names = self._process_names()
        only_here = {}
        if "flower" in names:
            flower_auth = shlex.join(
                self.secret_command("basic-auth", self.env["FLOWER_PASSWORD_SECRET_ID"], "--user", "admin")
            )
            only_here["flower"] = ["--set", "AIRFLOW__CELERY__FLOWER_BASIC_AUTH_CMD", flower_auth]
        exec_helper = self.secret_command("exec", "--")[:3]
        return [
            Process(
                name,
                exec_helper + only_here.get(name, []) + ["--"] + commands[name],
                pre.get(name, []),
                *self._stop_policy(name),
            )
            for name in names
        ]

    def _stop_policy(self, name: str) -> tuple[str, int]:
        if name not in WARM_SHUTDOWN_PROCESSES:
            return DEFAULT_STOP
        seconds = self.env["WORKER_STOP_TIMEOUT_SECONDS"]
        if not seconds.isdigit() or int(seconds) <= 0:
            raise NodeEnvError(f"WORKER_STOP_TIMEOUT_SECONDS must be a positive number of seconds, not {seconds!r}")
        return "mixed", int(seconds)

    # -- configuration -------------------------------------------------------------------------
    def _db_settings(self) -> dict[str, str]:
        env = self.env
        if env["DB_KIND"] == "sqlite":
            return {"sql_alchemy_conn": f"sqlite:///{self.home / 'airflow.db'}"}
        options = ["--host", env["DB_HOST"], "--port", env["DB_PORT"], "--database", env["DB_NAME"]]
        tls = truthy(env["DB_TLS"])
        # The sync URL carries PyMySQL's ssl_ca; the async engine gets its TLS from metadata_db_tls.py.
        sync_tls = ["--ca-bundle", env["DB_CA_BUNDLE"]] if tls else []
        return {
            "sql_alchemy_conn_cmd": shlex.join(
                self.secret_command("mysql-url", env["DB_SECRET_ID"], *options, *sync_tls)
            ),
            "sql_alchemy_conn_async_cmd": shlex.join(
                self.secret_command("mysql-url", env["DB_SECRET_ID"], "--scheme", "mysql+aiomysql", *options)
            ),
            "sql_alchemy_connect_args_async": f"{ASYNC_DB_TLS_MODULE.stem}.CONNECT_ARGS",
            "ca_bundle": env["DB_CA_BUNDLE"] if tls else "",
            "ca_bundle_variable": CA_BUNDLE_VARIABLE,
        }

    def _broker_cmd(self) -> str:
        env = self.env
        options = ["--host", env["REDIS_HOST"], "--port", env["REDIS_PORT"]]
        if truthy(env["REDIS_TLS"]):
            options.append("--tls")
            if env["REDIS_CA_BUNDLE"]:
                options += ["--ca-bundle", env["REDIS_CA_BUNDLE"]]
        return shlex.join(self.secret_command("redis-url", env["REDIS_AUTH_SECRET_ID"], *options))

    def aws_connection_uri(self) -> str:
        from urllib.parse import urlencode

        query = {"region_name": self.env["AWS_REGION"]}
        if self.env["AWS_ENDPOINT_URL"]:
            # The emulator tells the nodes apart by key (each is checked against its own instance role);
            # on EC2 the instance role supplies credentials.
            query["endpoint_url"] = self.env["AWS_ENDPOINT_URL"]
            return f"aws://node-{self.env['AIRFLOW_ROLE']}:testing@/?{urlencode(query)}"
        return f"aws://?{urlencode(query)}"

    def template_context(self) -> dict:
        env = self.env
        return {
            "env": env,
            "node_env_file": str(self.node_env_file),
            "home": str(self.home),
            "venv": str(self.venv),
            "env_file": str(self.env_file),
            "metadata_db": self.uses_metadata_db,
            "db": self._db_settings(),
            "broker_url_cmd": self._broker_cmd() if env["EXECUTOR"] == "CeleryExecutor" else "",
            "broker_tls": truthy(env["REDIS_TLS"]),
            "fernet_key_cmd": shlex.join(self.secret_command("fernet-key", env["FERNET_KEY_SECRET_ID"])),
            "jwt_secret_cmd": shlex.join(self.secret_command("value", env["JWT_SECRET_SECRET_ID"])),
            "api_secret_key_cmd": shlex.join(self.secret_command("value", env["API_SECRET_KEY_SECRET_ID"])),
            "aws_conn_uri": self.aws_connection_uri(),
            "systemd": env["PROCESS_MANAGER"] == "systemd",
            "role_label": "+".join(self.roles),
        }

    def rendered_files(self) -> dict[Path, str]:
        templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(CONFIG_DIR),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        templates.filters["q"] = env_file_value
        templates.filters["exec"] = unit_command
        context = self.template_context()
        files = {self.env_file: templates.get_template("airflow.env.j2").render(context)}
        if self.env["DB_KIND"] == "mysql" and self.uses_metadata_db:
            files[self.home / "config" / ASYNC_DB_TLS_MODULE.name] = ASYNC_DB_TLS_MODULE.read_text()
        unit = templates.get_template("airflow-process.service.j2")
        for process in self.processes():
            files[self.unit_dir / process.unit] = unit.render(context, process=process)
        return files

    def render(self) -> list[Path]:
        """Write only what differs, so running configure twice changes nothing."""
        for directory in (self.home, self.home / "config", self.unit_dir, Path(self.env["DAGS_FOLDER"])):
            directory.mkdir(parents=True, exist_ok=True)
        changed = []
        files = self.rendered_files()
        for path, content in files.items():
            if not path.exists() or path.read_text() != content:
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(content)
                tmp.chmod(0o644)
                os.replace(tmp, path)
                changed.append(path)
        stale = [p for p in self.unit_dir.glob(f"{UNIT_PREFIX}*.service") if p not in files]
        for path in stale:
            path.unlink()
            changed.append(path)
        if changed:
            (self.home / RESTART_MARKER).touch()
        return changed


def env_file_value(value: object) -> str:
    """A value both systemd's EnvironmentFile= and bash's `source` read back unchanged."""
    text = str(value)
    if any(c in text for c in "$`\n\r"):
        raise NodeEnvError(f"value {text[:40]!r}… holds $, ` or a newline, which an EnvironmentFile cannot carry")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_command(argv: list[str]) -> str:
    text = shlex.join(argv)
    if any(c in text for c in "$%\n"):
        raise NodeEnvError(f"command {text[:60]!r}… holds $, % or a newline, which systemd would expand")
    return text


# -- health -----------------------------------------------------------------------------------
def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class HealthChecks:
    """Each check returns None when healthy, else a one-line reason.

    A node's gate checks only its own processes: CloudFormation creates the nodes that start after
    this one (the api-server among them) only once this node has signalled success, so asking them
    would wait for ever (stacks/start_order.py).
    """

    def __init__(self, node: Node):
        self.node = node
        self.local_api = f"http://127.0.0.1:{node.env['API_SERVER_PORT']}/api/v2/monitor/health"

    def _component(self, url: str, component: str) -> str | None:
        status, body = _get(url)
        if status != 200:
            return f"{url} answered HTTP {status}"
        state = json.loads(body).get(component, {}).get("status")
        return None if state == "healthy" else f"{component} is {state or 'unknown'} according to {url}"

    def api_server(self) -> str | None:
        return self._component(self.local_api, "metadatabase") or self._execution_api()

    def _execution_api(self) -> str | None:
        """The API the workers' tasks call. A node whose REST API is healthy but whose /execution/ does not
        answer would signal success and fail every task. The first /execution/ request also makes the
        uvicorn worker that takes it build the API's versioned routes (seconds of CPU, longer than the task
        SDK's 5 s client timeout on a busy node; docs/emulator.md), so a task does not pay for that one."""
        url = f"http://127.0.0.1:{self.node.env['API_SERVER_PORT']}/execution/health"
        status, body = _get(url, timeout=60.0)
        if status != 200:
            return f"{url} answered HTTP {status}"
        state = json.loads(body).get("status")
        return None if state == "healthy" else f"the execution API is {state or 'unknown'} according to {url}"

    def scheduler(self) -> str | None:
        url = f"http://127.0.0.1:{self.node.env['SCHEDULER_HEALTH_PORT']}/health"
        status, _ = _get(url)
        return None if status == 200 else f"scheduler health check {url} answered HTTP {status}"

    def _local_job(self, job_type: str) -> str | None:
        """A live (recently heartbeating) job of this type started on this host, read from the metadata DB."""
        args = ["jobs", "check", "--job-type", job_type, "--local"]
        result = run_airflow(self.node, args)
        if result.returncode == 0:
            return None
        lines = (result.stderr or result.stdout).strip().splitlines()
        return f"airflow {' '.join(args)}: {lines[-1] if lines else f'exit {result.returncode}'}"

    def dag_processor(self) -> str | None:
        return self._local_job("DagProcessorJob")

    def triggerer(self) -> str | None:
        return self._local_job("TriggererJob")

    def flower(self) -> str | None:
        url = f"http://127.0.0.1:{self.node.env['FLOWER_PORT']}/healthcheck"
        status, body = _get(url)
        return None if status == 200 and body.strip() == "OK" else f"flower {url} answered HTTP {status}"

    def celery_worker(self) -> str | None:
        from celery import Celery

        broker = _secret_output(shlex.split(self.node.template_context()["broker_url_cmd"]), self.node)
        destination = f"celery@{socket.gethostname()}"
        app = Celery(broker=broker)
        try:
            replies = app.control.ping(destination=[destination], timeout=5.0)
        finally:
            app.close()
        return None if replies else f"celery worker {destination} did not answer inspect ping"

    def check(self, process: Process) -> str | None:
        check = getattr(self, process.name.replace("-", "_"))
        try:
            return check()
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            return f"{process.name}: {type(error).__name__}: {error}"


def _airflow_environment(node: Node) -> dict[str, str]:
    return {**os.environ, **{k: v or "" for k, v in dotenv_values(node.env_file).items()}}


def run_airflow(node: Node, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The airflow CLI with this node's settings, as the service user (like the bootstrap's airflow_cli)."""
    as_user = (
        ["runuser", "-u", node.env["AIRFLOW_USER"], "--"] if node.env["AIRFLOW_USER"] and os.geteuid() == 0 else []
    )
    command = [*as_user, *node.secret_command("exec", "--")[:3], "--", str(node.venv / "bin" / "airflow"), *args]
    return subprocess.run(
        command, env=_airflow_environment(node), capture_output=True, text=True, check=False, timeout=120
    )


def _secret_output(command: list[str], node: Node) -> str:
    env = _airflow_environment(node)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise ValueError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "secret helper failed")
    return result.stdout


def wait_healthy(node: Node, timeout: float, interval: float = 3.0) -> list[str]:
    checks = HealthChecks(node)
    pending = {p.name: p for p in node.processes()}
    problems: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        # Together: the job checks each start an airflow CLI, which takes seconds.
        with ThreadPoolExecutor(max_workers=len(pending)) as pool:
            found = dict(zip(pending, pool.map(checks.check, pending.values()), strict=True))
        for name, problem in found.items():
            if problem is None:
                print(f"health: {name} healthy", file=sys.stderr)
                del pending[name]
                problems.pop(name, None)
            else:
                problems[name] = problem
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(interval)
    return [f"{name}: {problems[name]}" for name in pending]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=("render", "units", "env-file", "health", "migrates", "uses-database", "restart-needed")
    )
    parser.add_argument("--timeout", type=float)
    args = parser.parse_args(argv)
    path = Path(os.environ.get("NODE_ENV_FILE", "/etc/airflow/node.env"))
    try:
        node = Node.from_env_file(path)
        if args.command == "render":
            for changed in node.render():
                print(f"changed {changed}")
        elif args.command == "units":
            print("\n".join(p.unit for p in node.processes()))
        elif args.command == "env-file":
            print(node.env_file)
        elif args.command == "migrates":
            return 0 if node.migrates_database else 1
        elif args.command == "uses-database":
            return 0 if node.uses_metadata_db else 1
        elif args.command == "restart-needed":
            marker = node.home / RESTART_MARKER
            needed = marker.exists()
            marker.unlink(missing_ok=True)
            return 0 if needed else 1
        else:
            timeout = args.timeout if args.timeout is not None else float(node.env["HEALTH_TIMEOUT_SECONDS"])
            failures = wait_healthy(node, timeout)
            for failure in failures:
                print(f"unhealthy: {failure}", file=sys.stderr)
            return 1 if failures else 0
    except NodeEnvError as error:
        print(f"node.env: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
