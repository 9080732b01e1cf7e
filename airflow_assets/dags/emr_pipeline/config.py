"""How the DAGs read the Airflow Variable ``emr_pipeline``, whose keys variable.py defines.

Read at run time (templates or inside callables), except the few optional keys that are DAG and
operator arguments (``dag_settings``), read when the DAG files are parsed, with defaults when the
Variable is absent, so DAG parsing never needs it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

from .variable import VARIABLE, DagSettings, EmrPipelineVariable

AWS_CONN_ID = "aws_default"


def pipeline_config() -> dict[str, Any]:
    """The Variable as stored, unchecked: the outcome mail must go out even when a key it does not
    use is broken (that is what the mail then reports)."""
    return Variable.get(VARIABLE, deserialize_json=True)


def pipeline() -> EmrPipelineVariable:
    """The Variable, checked: every missing, unknown or malformed key is named at once."""
    return EmrPipelineVariable.from_dict(pipeline_config())


def dag_settings() -> DagSettings:
    """The Variable's parse-time keys (variable.py ``DagSettings``): the one read when a DAG file is parsed."""
    return DagSettings.from_dict(Variable.get(VARIABLE, default=None, deserialize_json=True))


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
