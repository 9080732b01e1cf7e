"""EMR step definitions of dag_2 (command-runner.jar spark-submit steps) and the URI checks they apply.

The templates are rendered by EmrAddStepsOperator; ``params`` are dag_2's run conf.
"""

from __future__ import annotations

from .config import run_setting, setting, templated

LOAD_JOB = "load_customers.py"
SORT_JOB = "sort_by_spending_score.py"  # also the load job's --py-files: its CSV reader and checks
CUSTOMERS_TABLE = "customers"  # the typed Hive table load_customers.py replaces
FAILURE_SUMMARIES = "pipeline-errors"  # under <log_uri><cluster id>/: one object per failed step
LOAD_STEP, SORT_STEP = "load_customers_into_hive", "sort_customers_by_spending_score"
STEP_NAMES = (LOAD_STEP, SORT_STEP)  # dag_2 adds and waits for them one after the other


def _bucket_and_key(uri: str, name: str) -> tuple[str, str]:
    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme != "s3" or not bucket:
        raise ValueError(f"{name} {uri!r} is not an s3://bucket/key URI")
    return bucket, key


def checked_input_uri(uri: str) -> str:
    """``input_uri`` names one CSV object inside a prefix; ValueError otherwise.

    Not at the bucket root: the input's grants are scoped to its prefix, which would be the bucket.
    """
    _, key = _bucket_and_key(uri, "input_uri")
    if not key or key.endswith("/") or "/" not in key:
        raise ValueError(
            f"input_uri {uri!r} must name a CSV object inside a prefix, e.g. s3://bucket/data/Mall_Customers.csv"
        )
    return uri


def checked_output_uri(uri: str) -> str:
    """``output_uri`` is a prefix below the bucket root (the job's grant is that prefix); ValueError otherwise."""
    bucket, key = _bucket_and_key(uri, "output_uri")
    if not key.strip("/"):
        raise ValueError(f"output_uri {uri!r} is a bucket root; use a prefix such as s3://{bucket}/output/customers/")
    return uri if uri.endswith("/") else uri + "/"


def failure_summary_uri(log_uri: str, cluster_id: str, step_name: str) -> str:
    """Where a step writes its one ``error:`` line on bad input; dag_1's mail reads it from there."""
    return f"{log_uri.rstrip('/')}/{cluster_id}/{FAILURE_SUMMARIES}/{step_name}.txt"


def _command_step(name: str, args: list[str]) -> dict:
    return {
        "Name": name,
        # The step sensor fails the task; dag_1 terminates the cluster, so keep it for diagnosis.
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def _failure_summary(step_name: str) -> str:
    return templated(f"failure_summary_uri({setting('log_uri')}, params.cluster_id, '{step_name}')")


def hive_load_steps() -> list[dict]:
    steps = templated(setting("steps_uri"))
    return [
        _command_step(
            LOAD_STEP,
            [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--py-files",
                steps + SORT_JOB,
                steps + LOAD_JOB,
                "--input",
                templated(f"{run_setting('input_uri')} | checked_input_uri"),
                "--database",
                templated(setting("hive_database")),
                "--failure-summary",
                _failure_summary(LOAD_STEP),
            ],
        )
    ]


def sort_steps() -> list[dict]:
    return [
        _command_step(
            SORT_STEP,
            [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                templated(setting("steps_uri")) + SORT_JOB,
                "--source-table",
                templated(setting("hive_database")) + "." + CUSTOMERS_TABLE,
                "--output",
                templated(f"{run_setting('output_uri')} | checked_output_uri"),
                "--failure-summary",
                _failure_summary(SORT_STEP),
            ],
        )
    ]
