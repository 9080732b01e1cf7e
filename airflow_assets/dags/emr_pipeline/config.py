"""The pipeline's configuration: the Airflow Variable ``emr_pipeline`` (docs/contracts.md section 1).

Read at run time only (templates or inside callables), so DAG parsing never needs the Variable.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

VARIABLE = "emr_pipeline"
AWS_CONN_ID = "aws_default"

# Optional keys and their defaults.
DEFAULT_POLL_INTERVAL_SECONDS = 60
DEFAULT_SENSOR_TIMEOUT_SECONDS = 6 * 60 * 60
# "deferrable": the wait runs as a trigger in the triggerer, so no worker slot is held and no
# reschedule round-trips happen (those hit apache/airflow#71172). "reschedule" and "poke" remain.
SENSOR_MODES = ("deferrable", "reschedule", "poke")
DEFAULT_SENSOR_MODE = "deferrable"


def pipeline_config() -> dict[str, Any]:
    return Variable.get(VARIABLE, deserialize_json=True)


# Jinja expression for the whole configuration dict, for templated operator fields.
CONFIG = f"var.json.{VARIABLE}"


def setting(key: str) -> str:
    """Jinja expression for one configuration key."""
    return f"{CONFIG}.{key}"


def templated(expression: str) -> str:
    return "{{ " + expression + " }}"


def run_setting(key: str) -> str:
    """Jinja expression: the run's ``params.<key>`` when given, else the configured default."""
    return f"(params.{key} or {setting(key)})"


def require(config: dict[str, Any], *keys: str) -> None:
    """Fail with the names of the missing keys rather than a bare KeyError deep in a template."""
    missing = [key for key in keys if config.get(key) in (None, "")]
    if missing:
        raise ValueError(f"Airflow Variable {VARIABLE!r} lacks {', '.join(missing)} (see docs/contracts.md)")
