"""The cluster rehearsal's node.env: the synthesized template's, with only the values that must differ here.

Each node's file starts from the cfn-init `files` entry that writes node.env on that role's instance,
rendered with the emulator's values for the template's references (the secrets' ARNs, the buckets',
roles' and network's names the seed created: `bind_to_emulator`). Then only the keys of LOCAL_VALUES
take the rehearsal's values; any other difference from the template stops the rehearsal naming the key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_assets.bootstrap import node_env_file
from rehearsal.aws.seed import pipeline_tuning
from rehearsal.aws.stack_template import PIPELINE_PARAMETER, SynthesizedStack, TemplateNode, bind_to_emulator
from stacks.cfn_values import placeholder_get_att, placeholder_ref, render


class Local(Enum):
    REPLACES = "replaces the template's value"
    # The template leaves the key to node_env_file.DEFAULTS (EC2's calm defaults); a value it sets wins.
    TUNES_DEFAULT = "only where the template sets no value"


_ENDPOINT = "endpoint on loopback"
_PORT = "loopback stands in for three hosts, so every listening port is a free one of this machine"
_PATH = "local path: one directory per node under the run's workdir, the repo's requirements and DAGs"
_TUNING = "rehearsal tuning: pick work up within seconds instead of EC2's calmer defaults"

# Every key whose value in the rehearsal's node.env is not the synthesized template's, and why. The one list.
LOCAL_VALUES: dict[str, tuple[Local, str]] = {
    "DB_HOST": (Local.REPLACES, f"{_ENDPOINT}: the run's TLS-only MariaDB stands in for the RDS instance"),
    "DB_PORT": (Local.REPLACES, f"{_ENDPOINT}: the run's MariaDB listens on a free port"),
    "REDIS_HOST": (Local.REPLACES, f"{_ENDPOINT}: the run's TLS + AUTH redis-server stands in for ElastiCache"),
    "REDIS_PORT": (Local.REPLACES, f"{_ENDPOINT}: the run's redis-server listens on a free port"),
    "API_SERVER_BIND": (Local.REPLACES, f"{_ENDPOINT}: the api-server listens on loopback, not the VPC"),
    "AWS_ENDPOINT_URL": (Local.REPLACES, "endpoint: the emulator; on EC2 the SDKs use the regional endpoints"),
    "DB_CA_BUNDLE": (Local.REPLACES, "CA: the run's own CA signed the MariaDB certificate, not the RDS bundle"),
    "REDIS_CA_BUNDLE": (Local.REPLACES, "CA: the run's own Redis CA; on AWS the OS trust store verifies ElastiCache"),
    "API_SERVER_PORT": (Local.REPLACES, _PORT),
    "FLOWER_PORT": (Local.REPLACES, _PORT),
    "WORKER_LOG_SERVER_PORT": (Local.REPLACES, _PORT),
    "TRIGGERER_LOG_SERVER_PORT": (Local.REPLACES, _PORT),
    "SCHEDULER_HEALTH_PORT": (Local.REPLACES, _PORT),
    "AIRFLOW_HOME": (Local.REPLACES, _PATH),
    "AIRFLOW_VENV": (Local.REPLACES, f"{_PATH} (one venv the nodes share, installed by the first)"),
    "AIRFLOW_REQUIREMENTS": (Local.REPLACES, _PATH),
    "DAGS_SOURCE_DIR": (Local.REPLACES, _PATH),
    "DAGS_FOLDER": (Local.REPLACES, f"{_PATH} (the access-point mount, rehearsal/access_point.py)"),
    "AIRFLOW_USER": (
        Local.REPLACES,
        "no service user: the rehearsal creates no system users on its machine (the shared DAG folder "
        "still forces the template's uid/gid on its files)",
    ),
    "API_SERVER_WORKERS": (
        Local.REPLACES,
        "one uvicorn worker: each worker builds the Execution API's routes (Cadwyn) on its first /execution "
        "request, on its event loop: ~3 CPU-s, 5-13 s wall on this shared 2-core machine at load ~11, while "
        "that worker answers nothing. With the template's 2 the first task's PATCH .../run met a cold worker "
        "on each of its first 2 attempts, each outlasting the 5 s execution_api_timeout (12-19 s in all; earlier "
        "4 timeouts and a failed task, twice); no MariaDB lock wait meanwhile. On EC2 ~3 s stays under it",
    ),
    "PROCESS_MANAGER": (Local.REPLACES, "the rehearsal's supervisor runs the rendered unit files instead of systemd"),
    "SCHEDULER_COUNT": (
        Local.REPLACES,
        "the fault drills rehearse the stack's scheduler_count=2 shape (stacks/config.py) on the dev template",
    ),
    PIPELINE_PARAMETER: (
        Local.REPLACES,
        "the template's JSON plus only PIPELINE_LOCAL_FIELDS (seed.pipeline_tuning): fast polls and retries keep a run short",
    ),
    "WORKER_CONCURRENCY": (Local.TUNES_DEFAULT, "the rehearsal machine has fewer cores than the worker instance"),
    **dict.fromkeys(
        (
            "SCHEDULER_HEARTBEAT_SEC",
            "DAG_REFRESH_INTERVAL",
            "MIN_FILE_PROCESS_INTERVAL",
            "TASK_HEARTBEAT_TIMEOUT",
            "SCHEDULER_HEALTH_THRESHOLD",
            "ORPHANED_TASKS_CHECK_INTERVAL",
            "HEALTH_TIMEOUT_SECONDS",
            "MIGRATION_WAIT_SECONDS",
        ),
        (Local.TUNES_DEFAULT, _TUNING),
    ),
}
# The fields the rehearsal adds to the template's emr_pipeline Variable (EMR_PIPELINE_JSON); every other
# field is the template's, references bound to the emulator's resources.
PIPELINE_LOCAL_FIELDS = tuple(pipeline_tuning(poll_interval=1))


class NodeEnvMismatch(ValueError):
    """The rehearsal's node.env differs from the template's in a key LOCAL_VALUES does not list."""


@dataclass(frozen=True)
class TemplateEnv:
    """One role's node.env as the template renders it with the emulator's resources.

    `unresolved`: key -> the references (<Logical.Attr>) in its value that the emulator has no resource
    for (the RDS and ElastiCache endpoints): such a key must be one the rehearsal replaces.
    """

    role: str
    values: dict[str, str]
    unresolved: dict[str, tuple[str, ...]]


def emulated_references(stack: SynthesizedStack, aws: Any) -> dict[str, str]:
    """Logical id (or Logical.Attr) -> the emulated resource's value: the seed's names and ARNs, bound to
    the template through the values both hand the nodes (stack_template.bind_to_emulator)."""
    values, _ = bind_to_emulator(
        stack,
        region=aws.region,
        account=aws.account_id,
        pipeline_config=aws.pipeline_config,
        secret_ids=aws.secret_ids,
    )
    pseudo = {"AWS::Region": aws.region, "AWS::AccountId": aws.account_id, "AWS::Partition": "aws"}
    return {**pseudo, **values.bindings}


def template_env(node: TemplateNode, references: Mapping[str, str]) -> TemplateEnv:
    """The template's node.env for `node`, each reference rendered to its emulated resource's value."""
    missing: set[str] = set()

    def ref(name: str) -> str:
        if name in references:
            return references[name]
        missing.add(placeholder_ref(name))
        return placeholder_ref(name)

    def get_att(name: str, attribute: str) -> str:
        if f"{name}.{attribute}" in references:
            return references[f"{name}.{attribute}"]
        missing.add(placeholder_get_att(name, attribute))
        return placeholder_get_att(name, attribute)

    values = node_env_file.parse(render(node.node_env_content, ref, get_att), node_env_file.PATH_ON_NODE)
    unresolved = {
        key: found for key, value in values.items() if (found := tuple(sorted(p for p in missing if p in value)))
    }
    return TemplateEnv(values["AIRFLOW_ROLE"], values, unresolved)


def rehearsal_env(template: TemplateEnv, local: Mapping[str, str]) -> dict[str, str]:
    """The template's node.env with the rehearsal's `local` values for LOCAL_VALUES keys only."""
    unlisted = sorted(set(local) - set(LOCAL_VALUES))
    if unlisted:
        raise NodeEnvMismatch(
            f"the rehearsal would set {', '.join(unlisted)} in node.env, which rehearsal/node_env_template.py "
            "LOCAL_VALUES does not list: every other value is the synthesized template's"
        )
    params = dict(template.values)
    for key, value in local.items():
        if LOCAL_VALUES[key][0] is Local.TUNES_DEFAULT and key in template.values:
            continue  # the template sets it: the node runs with the template's value, here as on EC2
        params[key] = value
    return params


def check(name: str, params: Mapping[str, str], template: TemplateEnv) -> None:
    """`params` is the template's node.env but for LOCAL_VALUES; else the error names each differing key."""
    problems = []
    for key in sorted(set(params) | set(template.values)):
        listed = LOCAL_VALUES.get(key)
        if key not in params:
            problems.append(f"{key} is missing (the template sets {key}={template.values[key]!r})")
        elif key in template.unresolved and (
            listed is None or key == PIPELINE_PARAMETER or params[key] == template.values[key]
        ):
            problems.append(
                f"{key} refers to {', '.join(template.unresolved[key])}, which the emulator creates no resource for"
            )
        elif key == PIPELINE_PARAMETER and key in template.values:
            problems += _pipeline_problems(params[key], template.values[key])
        elif key not in template.values and listed is None:
            problems.append(f"{key} is not in the template's node.env")
        elif (
            key in template.values
            and params[key] != template.values[key]
            and (listed is None or listed[0] is Local.TUNES_DEFAULT)
        ):
            problems.append(f"{key}={_short(params[key])}, the template's is {_short(template.values[key])}")
    if problems:
        raise NodeEnvMismatch(
            f"{name}: the rehearsal's node.env differs from the synthesized template's for "
            f"AIRFLOW_ROLE={template.role} beyond rehearsal/node_env_template.py LOCAL_VALUES: " + "; ".join(problems)
        )


def _pipeline_problems(value: str, template_value: str) -> list[str]:
    try:
        ours = json.loads(value)
    except json.JSONDecodeError as error:
        return [f"{PIPELINE_PARAMETER} is not JSON ({error.msg})"]
    theirs = json.loads(template_value)
    fields = sorted(
        field
        for field in set(ours) | set(theirs)
        if field not in PIPELINE_LOCAL_FIELDS and ours.get(field, ...) != theirs.get(field, ...)
    )
    return [
        f"{PIPELINE_PARAMETER} field {field}={_short(json.dumps(ours.get(field)))}, the template's is "
        f"{_short(json.dumps(theirs.get(field)))}"
        for field in fields
    ]


def _short(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")
