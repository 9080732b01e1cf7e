"""How the DAGs read the Airflow Variable ``emr_pipeline``, whose keys variable.py defines.

Read at run time only (templates or inside callables), so DAG parsing never needs the Variable.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

from .variable import VARIABLE, EmrPipelineVariable

AWS_CONN_ID = "aws_default"


def pipeline_config() -> dict[str, Any]:
    """The Variable as stored, unchecked: the outcome mail must go out even when a key it does not
    use is broken (that is what the mail then reports)."""
    return Variable.get(VARIABLE, deserialize_json=True)


def pipeline() -> EmrPipelineVariable:
    """The Variable, checked: every missing, unknown or malformed key is named at once."""
    return EmrPipelineVariable.from_dict(pipeline_config())


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
