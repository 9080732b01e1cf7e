"""EMR step definitions of dag_2 (command-runner.jar, conventional argument shapes).

The templates are rendered by EmrAddStepsOperator; ``params`` are dag_2's run conf.
"""

from __future__ import annotations

from .config import run_setting, setting, templated

HIVE_DDL = "load_customers.hql"
SORT_JOB = "sort_by_spending_score.py"
CUSTOMERS_TABLE = "customers"  # the typed table load_customers.hql creates


def parent_prefix(uri: str) -> str:
    """``s3://b/input/x/file.csv`` -> ``s3://b/input/x/`` (the Hive external table's LOCATION)."""
    head, sep, _ = uri.rpartition("/")
    if not sep or head.endswith(":/") or head.endswith(":"):
        raise ValueError(f"input_uri {uri!r} has no parent prefix")
    return head + "/"


def _command_step(name: str, args: list[str]) -> dict:
    return {
        "Name": name,
        # The step sensor fails the task; dag_1 terminates the cluster, so keep it for diagnosis.
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def hive_load_steps() -> list[dict]:
    return [
        _command_step(
            "load_customers_into_hive",
            [
                "hive",
                "-f",
                templated(setting("steps_uri")) + HIVE_DDL,
                "--hivevar",
                "input_location=" + templated(f"{run_setting('input_uri')} | parent_prefix"),
                "--hivevar",
                "database=" + templated(setting("hive_database")),
            ],
        )
    ]


def sort_steps() -> list[dict]:
    return [
        _command_step(
            "sort_customers_by_spending_score",
            [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                templated(setting("steps_uri")) + SORT_JOB,
                "--source-table",
                templated(setting("hive_database")) + "." + CUSTOMERS_TABLE,
                "--output",
                templated(run_setting("output_uri")),
            ],
        )
    ]
