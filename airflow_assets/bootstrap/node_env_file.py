"""node.env (contracts §4): its keys, their defaults, and its file format, for every writer and reader.

Writers: the stack (cfn-init writes the file it renders), the rehearsal. Readers: node.py, the
bootstrap's `node_env` in lib/bootstrap.sh, the infrastructure tests and the rehearsal. This module
imports only the standard library, so the stack (no Airflow), the node (no CDK) and the tests share it.

The format is the subset that bash's reader and this parser read alike: one `KEY=VALUE` a line, the
value bare when it holds only characters no reader treats specially, else in single quotes, never
with a quote or a line break inside. python-dotenv is not used: it expands `${VAR}` in bare values
and unescapes `\\`, which the bash reader does not, so the two would disagree on the same file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

PATH_ON_NODE = "/etc/airflow/node.env"
# Defaults suit EC2; the rehearsal overrides the tuning keys to pick work up within seconds.
DEFAULTS = {
    "STAGE": "dev",
    "EXECUTOR": "CeleryExecutor",
    "SCHEDULER_COUNT": "1",
    "COLOCATED_ROLES": "",
    "API_SERVER_PORT": "8080",
    "API_SERVER_BIND": "0.0.0.0",
    "API_SERVER_WORKERS": "2",
    "DB_KIND": "mysql",
    "DB_PORT": "3306",
    "DB_TLS": "true",
    "DB_CA_BUNDLE": "",
    "REDIS_PORT": "6379",
    "REDIS_TLS": "true",
    # Empty: the OS trust store verifies the broker (ElastiCache's certificate chains to Amazon's roots).
    "REDIS_CA_BUNDLE": "",
    "PROCESS_MANAGER": "systemd",
    "SYSTEMD_UNIT_DIR": "/etc/systemd/system",
    "AIRFLOW_USER": "",
    "WORKER_CONCURRENCY": "8",
    "FLOWER_PORT": "5555",
    "SCHEDULER_HEALTH_PORT": "8974",
    "WORKER_LOG_SERVER_PORT": "8793",
    "TRIGGERER_LOG_SERVER_PORT": "8794",
    "SCHEDULER_HEARTBEAT_SEC": "5",
    "DAG_REFRESH_INTERVAL": "300",
    "MIN_FILE_PROCESS_INTERVAL": "30",
    "TASK_HEARTBEAT_TIMEOUT": "300",
    "SCHEDULER_HEALTH_THRESHOLD": "30",
    "ORPHANED_TASKS_CHECK_INTERVAL": "300",
    "HEALTH_TIMEOUT_SECONDS": "300",
    # TimeoutStopSec of the Celery worker: longer than its longest non-deferrable task. Those are EMR
    # and SES API calls (seconds to a few minutes with retries); the waits are deferred to the triggerer.
    # A task still running after this is killed and retried.
    "WORKER_STOP_TIMEOUT_SECONDS": "900",
    "AWS_ENDPOINT_URL": "",
}
REQUIRED = (
    "AIRFLOW_ROLE",
    "AWS_REGION",
    "AIRFLOW_HOME",
    "AIRFLOW_VENV",
    "DAGS_FOLDER",
    "API_SERVER_HOST",
    "FERNET_KEY_SECRET_ID",
    "JWT_SECRET_SECRET_ID",
    "API_SECRET_KEY_SECRET_ID",
    "ADMIN_PASSWORD_SECRET_ID",
    "REMOTE_LOG_URI",
    "EMR_PIPELINE_JSON",
)
REQUIRED_FOR = {
    ("DB_KIND", "mysql"): ("DB_HOST", "DB_NAME", "DB_SECRET_ID"),
    ("EXECUTOR", "CeleryExecutor"): ("REDIS_HOST", "REDIS_AUTH_SECRET_ID", "FLOWER_PASSWORD_SECRET_ID"),
}
# Read only by lib/bootstrap.sh, which has its own fallback where one applies.
BOOTSTRAP_ONLY = ("AIRFLOW_UID", "AIRFLOW_GID", "AIRFLOW_REQUIREMENTS", "DAGS_SOURCE_DIR", "MIGRATION_WAIT_SECONDS")
KEYS = frozenset({*DEFAULTS, *REQUIRED, *(key for keys in REQUIRED_FOR.values() for key in keys), *BOOTSTRAP_ONLY})
ROLES = ("api-server", "scheduler", "worker")

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
# A value of only these characters reads the same bare in bash, systemd and this parser.
_BARE = re.compile(r"[A-Za-z0-9_.,:/@%+=-]*")


class NodeEnvError(ValueError):
    """node.env is missing a key or holds a value the node cannot use."""


def render(values: Mapping[str, str]) -> str:
    """The file's text. A value that cannot be written so that every reader reads it back is an error."""
    lines = []
    for key, value in values.items():
        value = str(value)
        if not _KEY.fullmatch(key):
            raise NodeEnvError(f"node.env key {key!r} is not an upper-case shell name")
        if "'" in value or "\n" in value:
            raise NodeEnvError(
                f"node.env value of {key} holds a single quote or a line break, which the format cannot carry"
            )
        lines.append(f"{key}={value}" if _BARE.fullmatch(value) else f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def parse(text: str, source: str = "node.env") -> dict[str, str]:
    """KEY=VALUE lines as written by `render` (blank and # lines skipped); the last of a repeated key wins, as in bash's reader."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise NodeEnvError(f"{source} line {number} is not KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def truthy(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def validate(values: Mapping[str, str], source: str = "node.env") -> dict[str, str]:
    """The node's parameters: DEFAULTS under the file's values (an empty value takes the default), checked."""
    unknown = sorted(set(values) - KEYS)
    if unknown:
        raise NodeEnvError(
            f"{source} has keys no node reads: {', '.join(unknown)} (node.env's keys: airflow_assets/bootstrap/node_env_file.py)"
        )
    env = {**DEFAULTS, **{k: v for k, v in values.items() if v != "" or k not in DEFAULTS}}
    missing = [k for k in REQUIRED if not env.get(k)]
    for (key, value), keys in REQUIRED_FOR.items():
        if env[key] == value:
            missing += [k for k in keys if not env.get(k)]
    if missing:
        raise NodeEnvError(f"{source} lacks {', '.join(missing)}")
    if env["AIRFLOW_ROLE"] not in ROLES:
        raise NodeEnvError(f"{source}: AIRFLOW_ROLE={env['AIRFLOW_ROLE']!r}, expected one of {', '.join(ROLES)}")
    if env["SCHEDULER_COUNT"] not in {"1", "2"}:
        raise NodeEnvError(f"{source}: SCHEDULER_COUNT must be 1 or 2, not {env['SCHEDULER_COUNT']!r}")
    if env["DB_KIND"] not in {"mysql", "sqlite"}:
        raise NodeEnvError(f"{source}: DB_KIND must be mysql or sqlite, not {env['DB_KIND']!r}")
    if env["DB_KIND"] == "mysql" and truthy(env["DB_TLS"]) and not env["DB_CA_BUNDLE"]:
        raise NodeEnvError(
            f"{source}: DB_TLS=true needs DB_CA_BUNDLE, the CA file that verifies the database "
            "certificate (TLS without it would accept any server)"
        )
    if env["EXECUTOR"] not in {"CeleryExecutor", "LocalExecutor"}:
        raise NodeEnvError(f"{source}: EXECUTOR must be CeleryExecutor or LocalExecutor, not {env['EXECUTOR']!r}")
    try:
        json.loads(env["EMR_PIPELINE_JSON"])
    except json.JSONDecodeError as error:
        raise NodeEnvError(f"{source}: EMR_PIPELINE_JSON is not valid JSON ({error.msg})") from None
    return env


def read(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise NodeEnvError(f"node parameters file {path} does not exist (set NODE_ENV_FILE)")
    return validate(parse(path.read_text(), str(path)), str(path))
