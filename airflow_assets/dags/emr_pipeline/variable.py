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
from datetime import timedelta
from typing import Any

VARIABLE = "emr_pipeline"

# "deferrable": the wait runs as a trigger in the triggerer, so no worker slot is held and no
# reschedule round-trips happen (those hit apache/airflow#71172). "reschedule" and "poke" remain.
SENSOR_MODES = ("deferrable", "reschedule", "poke")
# dag_1's dagrun_timeout; None: longer than a run can last (emr_pipeline/ending.py).
RUN_TIMEOUT_KEY = "run_timeout_seconds"


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
    # Optional, and read when the DAGs are parsed (DagSettings below): how the sensors wait, how long
    # a dag_1 run may last, how long a failed task waits before its retry.
    poll_interval_seconds: float = 60
    sensor_timeout_seconds: float = 6 * 60 * 60
    sensor_mode: str = "deferrable"
    run_timeout_seconds: float | None = None
    retry_delay_seconds: float = 60

    def __post_init__(self) -> None:
        _raise_problems({key: getattr(self, key) for key in KEYS})

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


def _number(key: str, value: Any) -> str | None:
    return None if _is_number(value) else f"{key} must be a number, not {value!r}"


def _positive_seconds(key: str, value: Any) -> str | None:
    return None if _is_number(value) and value > 0 else f"{key} must be a positive number of seconds, not {value!r}"


def _positive_seconds_or_none(key: str, value: Any) -> str | None:
    return None if value is None else _positive_seconds(key, value)


def _sensor_mode(key: str, value: Any) -> str | None:
    return None if value in SENSOR_MODES else f"{key} must be one of {list(SENSOR_MODES)}, not {value!r}"


def _tags(key: str, value: Any) -> str | None:
    return None if isinstance(value, Mapping) else f"{key} must be an object of tag names to values, not {value!r}"


# The value checks, by key; the others are strings that AWS itself checks.
_CHECKS = {
    "core_instance_count": _number,
    "idle_timeout_seconds": _number,
    "cluster_tags": _tags,
    "poll_interval_seconds": _positive_seconds,
    "sensor_timeout_seconds": _positive_seconds,
    "sensor_mode": _sensor_mode,
    "run_timeout_seconds": _positive_seconds_or_none,
    "retry_delay_seconds": _positive_seconds,
}


def _raise_problems(values: Mapping[str, Any]) -> None:
    """Every malformed value named at once."""
    problems = [problem for key, check in _CHECKS.items() if key in values and (problem := check(key, values[key]))]
    if problems:
        raise ValueError(f"Airflow Variable {VARIABLE!r}: {'; '.join(problems)} (see docs/contracts.md)")


_KEY_FIELDS = dataclasses.fields(EmrPipelineVariable)
KEYS = tuple(key.name for key in _KEY_FIELDS)
REQUIRED_KEYS = tuple(key.name for key in _KEY_FIELDS if key.default is dataclasses.MISSING)
OPTIONAL_KEYS = tuple(key for key in KEYS if key not in REQUIRED_KEYS)
DEFAULTS = {key.name: key.default for key in _KEY_FIELDS if key.default is not dataclasses.MISSING}


@dataclass(frozen=True)
class DagSettings:
    """The Variable's keys the DAG files read when they are parsed (emr_pipeline/config.py ``dag_settings``).

    They become DAG and operator arguments -- ``dagrun_timeout``, ``retry_delay``, the sensors' mode,
    poke interval and timeout -- because the scheduler and the executor take those from the parsed
    DAG, so what the DAG file declares is what runs; an edit applies after the next parse. All are
    optional, so parsing needs no Variable: a key absent (or the Variable absent) takes
    EmrPipelineVariable's default. A malformed value fails the parse with an import error naming it.
    """

    poll_interval_seconds: float
    sensor_timeout_seconds: float
    sensor_mode: str
    run_timeout_seconds: float | None
    retry_delay_seconds: float

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DagSettings:
        """From the stored Variable (None when there is none); the required keys are checked at run time."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(f"Airflow Variable {VARIABLE!r} must be a JSON object, not {type(values).__name__}")
        chosen = {key.name: values.get(key.name, DEFAULTS[key.name]) for key in dataclasses.fields(cls)}
        _raise_problems(chosen)
        return cls(**chosen)

    @property
    def retry_delay(self) -> timedelta:
        return timedelta(seconds=self.retry_delay_seconds)

    @property
    def deferrable(self) -> bool:
        """``sensor_mode`` "deferrable": after at most one check on the worker the wait is handed to the
        triggerer, so no worker slot is held while EMR works and there are no reschedule round-trips,
        which in Airflow 3.3 hit apache/airflow#71172."""
        return self.sensor_mode == "deferrable"

    @property
    def mode(self) -> str:
        """The sensors' ``mode`` on the worker: "reschedule" (a short poke per interval, the slot freed in
        between) or "poke" (a worker slot held for the whole wait). A deferrable sensor never consults it;
        it gets "poke", BaseSensorOperator's default."""
        return "poke" if self.deferrable else self.sensor_mode
