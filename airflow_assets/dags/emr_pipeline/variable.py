"""The Airflow Variable ``emr_pipeline``: its one definition (docs/contracts.md section 1).

Pure Python on purpose: the CDK stack builds it (stacks/airflow_stack.py), the rehearsal's seed and
the tests fill it, and the DAGs read it on the nodes, where this file ships with the DAG folder.
Keys are the field names; a field without a default is required. ``to_dict`` leaves out optional
keys at their default, so the stored JSON holds what was chosen and the defaults live only here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VARIABLE = "emr_pipeline"

# "deferrable": the wait runs as a trigger in the triggerer, so no worker slot is held and no
# reschedule round-trips happen (those hit apache/airflow#71172). "reschedule" and "poke" remain.
SENSOR_MODES = ("deferrable", "reschedule", "poke")
# dag_1's dagrun_timeout; None: longer than a run can last (emr_pipeline/ending.py). Read when dag_1 is parsed.
RUN_TIMEOUT_KEY = "run_timeout_seconds"


def run_timeout_problem(value: Any) -> str | None:
    if value is None or (_is_number(value) and value > 0):
        return None
    return f"{RUN_TIMEOUT_KEY} must be a positive number of seconds, not {value!r}"


@dataclass(frozen=True)
class EmrPipelineVariable:
    """Field order is the JSON's key order (the stack's template renders it in this order)."""

    region: str
    release_label: str
    service_role: str  # EMR service role name
    job_flow_role: str  # EC2 instance profile name (equal to its role's name)
    subnet_id: str
    emr_managed_primary_sg: str
    emr_managed_core_sg: str
    service_access_sg: str
    log_uri: str
    steps_uri: str
    input_uri: str
    output_uri: str
    hive_database: str
    primary_instance_type: str
    core_instance_type: str
    core_instance_count: int
    idle_timeout_seconds: int
    cluster_tags: Mapping[str, str]
    sender_email: str
    alert_email: str
    # Optional: how the sensors wait.
    poll_interval_seconds: float = 60
    sensor_timeout_seconds: float = 6 * 60 * 60
    sensor_mode: str = "deferrable"
    run_timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be a number, not {getattr(self, name)!r}"
            for name in _NUMBERS
            if not _is_number(getattr(self, name))
        ]
        if timeout_problem := run_timeout_problem(self.run_timeout_seconds):
            problems.append(timeout_problem)
        if self.sensor_mode not in SENSOR_MODES:
            problems.append(f"sensor_mode must be one of {list(SENSOR_MODES)}, not {self.sensor_mode!r}")
        if not isinstance(self.cluster_tags, Mapping):
            problems.append(f"cluster_tags must be an object of tag names to values, not {self.cluster_tags!r}")
        if problems:
            raise ValueError(f"Airflow Variable {VARIABLE!r}: {'; '.join(problems)} (see docs/contracts.md)")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EmrPipelineVariable:
        """Every missing or unknown key named at once (a bare KeyError deep in a template helps no one)."""
        missing = sorted(key for key in REQUIRED_KEYS if values.get(key) in (None, ""))
        unknown = sorted(set(values) - set(KEYS))
        problems = [f"lacks {', '.join(missing)}"] if missing else []
        problems += [f"has unknown keys {', '.join(unknown)}"] if unknown else []
        if problems:
            raise ValueError(f"Airflow Variable {VARIABLE!r} {' and '.join(problems)} (see docs/contracts.md)")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> EmrPipelineVariable:
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(f"Airflow Variable {VARIABLE!r} must be a JSON object, not {type(values).__name__}")
        return cls.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        return {
            key.name: _plain(getattr(self, key.name))
            for key in _KEY_FIELDS
            if key.default is dataclasses.MISSING or getattr(self, key.name) != key.default
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KEY_FIELDS = dataclasses.fields(EmrPipelineVariable)
KEYS = tuple(key.name for key in _KEY_FIELDS)
REQUIRED_KEYS = tuple(key.name for key in _KEY_FIELDS if key.default is dataclasses.MISSING)
OPTIONAL_KEYS = tuple(key for key in KEYS if key not in REQUIRED_KEYS)
DEFAULTS = {key.name: key.default for key in _KEY_FIELDS if key.default is not dataclasses.MISSING}
_NUMBERS = ("core_instance_count", "idle_timeout_seconds", "poll_interval_seconds", "sensor_timeout_seconds")
