"""How many metadata-DB connections the Airflow nodes can hold at once, against RDS's max_connections.

The per-process numbers come from the configuration the nodes really run: each node's airflow.env and
process list are rendered by the bootstrap's own code (airflow_assets/bootstrap/node.py, the same
renderer cfn-init runs), and the pool settings are read back from that file. Only the count of engines
per process is modelled here:

- every Airflow process has one SQLAlchemy engine capped at pool size + overflow; an api-server worker
  has two (Airflow 3 adds an async engine with the same pool settings);
- the scheduler of a CeleryExecutor cluster also reads task states from the Celery result backend,
  one session at a time (Celery gives a process that has not forked a NullPool);
- each Celery worker child stores its task's result through its own result-backend engine;
- Flower talks to the broker only.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stacks.config import REPO_ROOT, ConfigError

NODE_MODULE = REPO_ROOT / "airflow_assets" / "bootstrap" / "node.py"
# Airflow's own fallbacks when airflow.env sets no pool (airflow/settings.py, [database] section).
AIRFLOW_POOL_FALLBACK = {"SQL_ALCHEMY_POOL_SIZE": 5, "SQL_ALCHEMY_MAX_OVERFLOW": 10}
# RDS for MySQL's default parameter group: max_connections = {DBInstanceClassMemory/12582880}.
MAX_CONNECTIONS_DIVISOR = 12582880
# DBInstanceClassMemory is the class's memory less what RDS and the OS keep, so the formula over the
# nominal memory overestimates; these connections are kept free for that, for RDS's own rdsadmin
# sessions, a migration and an operator's session.
RESERVED_CONNECTIONS = 10
GIB = 1024**3
_SIZE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16, "2xlarge": 32, "4xlarge": 64}
_MEMORY_OPTIMISED_SIZE_GIB = {"large": 16, "xlarge": 32, "2xlarge": 64, "4xlarge": 128}
# Nominal memory (GiB) of the RDS instance classes the budget knows (without the db. prefix).
INSTANCE_MEMORY_GIB: dict[str, int] = {
    **{f"{family}.{size}": gib for family in ("t3", "t4g") for size, gib in _SIZE_GIB.items() if size != "4xlarge"},
    **{
        f"{family}.{size}": gib for family in ("m5", "m6g", "m6i", "m7g") for size, gib in _SIZE_GIB.items() if gib >= 8
    },
    **{
        f"{family}.{size}": gib
        for family in ("r5", "r6g", "r6i", "r7g")
        for size, gib in _MEMORY_OPTIMISED_SIZE_GIB.items()
    },
}


def _load_node_module():
    # node.py runs as a script on the nodes, so its sibling modules import from its own directory.
    if str(NODE_MODULE.parent) not in sys.path:
        sys.path.append(str(NODE_MODULE.parent))
    spec = importlib.util.spec_from_file_location("airflow_bootstrap_node", NODE_MODULE)
    if spec is None or spec.loader is None:
        raise ImportError(f"{NODE_MODULE} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def max_connections(instance_class: str) -> int:
    """RDS MySQL's default max_connections for `instance_class` (e.g. t4g.micro), from its nominal memory."""
    if instance_class not in INSTANCE_MEMORY_GIB:
        raise ConfigError(
            f"context parameter 'db_instance_type': no connection budget is known for {instance_class!r}; "
            f"known classes: {', '.join(sorted(INSTANCE_MEMORY_GIB))}"
        )
    return INSTANCE_MEMORY_GIB[instance_class] * GIB // MAX_CONNECTIONS_DIVISOR


@dataclass(frozen=True)
class NodeBudget:
    role: str
    per_process: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.per_process.values())


def node_budget(node_env: Mapping[str, str], is_unresolved=lambda value: False) -> NodeBudget:
    """The most connections one node's processes can hold, from its rendered airflow.env and process list.

    `node_env` is the node.env the stack writes; values only known at deploy time (`is_unresolved`) do not
    change the count and are rendered as placeholders.
    """
    from dotenv import dotenv_values

    node_module = _load_node_module()
    env = {
        **node_module.DEFAULTS,
        **{key: '"deploy-time value"' if is_unresolved(value) else str(value) for key, value in node_env.items()},
    }
    node = node_module.Node(env, Path("/etc/airflow/node.env"))
    settings = dotenv_values(stream=io.StringIO(node.rendered_files()[node.env_file]))

    def airflow_setting(name: str) -> int:
        return int(settings.get(f"AIRFLOW__DATABASE__{name}") or AIRFLOW_POOL_FALLBACK[name])

    engine = airflow_setting("SQL_ALCHEMY_POOL_SIZE") + airflow_setting("SQL_ALCHEMY_MAX_OVERFLOW")
    # A node without a metadata-DB URL (the worker: tasks use the Execution API, Celery results go to
    # Redis) opens no connection at all.
    uses_db = any(f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN{suffix}" in settings for suffix in ("", "_CMD"))
    per_process = {}
    for process in node.processes():
        command = process.command
        if not uses_db or process.name in ("celery-worker", "flower"):
            per_process[process.name] = 0
        elif process.name == "api-server":
            workers = int(command[command.index("--workers") + 1])
            per_process[process.name] = workers * 2 * engine
        elif process.name in ("scheduler", "dag-processor", "triggerer"):
            per_process[process.name] = engine
        else:
            raise ValueError(f"no connection model for the Airflow process {process.name!r}")
    return NodeBudget(env["AIRFLOW_ROLE"], per_process)


def check_connection_budget(
    instance_class: str, node_envs: Sequence[Mapping[str, str]], is_unresolved=lambda value: False
) -> list[NodeBudget]:
    """Raise ConfigError when the nodes can open more connections than the database allows."""
    budgets = [node_budget(env, is_unresolved) for env in node_envs]
    needed = sum(budget.total for budget in budgets)
    allowed = max_connections(instance_class) - RESERVED_CONNECTIONS
    if needed > allowed:
        detail = "; ".join(
            f"{budget.role} node {budget.total} ({', '.join(f'{name} {count}' for name, count in budget.per_process.items())})"
            for budget in budgets
        )
        raise ConfigError(
            f"connection budget exceeded: the Airflow nodes can open {needed} metadata-DB connections, but db.{instance_class} "
            f"allows {allowed} (RDS max_connections {max_connections(instance_class)} less {RESERVED_CONNECTIONS} reserved): "
            f"{detail}. Use a larger db_instance_type or fewer api_server_workers / a lower worker concurrency."
        )
    return budgets
