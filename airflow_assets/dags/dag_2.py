"""DAG_2: the data work on dag_1's EMR cluster -- load the CSV into Hive, sort it with PySpark.

Triggered by dag_1 with conf ``{"cluster_id", "input_uri", "output_uri"}``; the URIs default to the
``emr_pipeline`` Variable. Each EMR step is followed by a step sensor, deferred to the triggerer by
default, so no worker slot is held while EMR works.
"""

from __future__ import annotations

import math
from datetime import datetime

from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import DAG, Param, chain

from emr_pipeline.config import AWS_CONN_ID, dag_settings, setting, templated
from emr_pipeline.steps import (
    checked_input_uri,
    checked_output_uri,
    failure_summary_uri,
    hive_load_steps,
    sort_steps,
)

CLUSTER_ID = "{{ params.cluster_id }}"
REGION = templated(setting("region"))
# The Variable's keys that are DAG and operator arguments, read when this file is parsed.
SETTINGS = dag_settings()
# Deferred, the step sensor's trigger polls at most max_attempts times, one poke interval apart, and the
# deferral times out after their product: that product is the configured sensor timeout.
STEP_SENSOR_MAX_ATTEMPTS = max(1, math.ceil(SETTINGS.sensor_timeout_seconds / SETTINGS.poll_interval_seconds))


def emr_step(task_id: str, steps: list[dict]) -> tuple[EmrAddStepsOperator, EmrStepSensor]:
    add = EmrAddStepsOperator(
        task_id=task_id,
        job_flow_id=CLUSTER_ID,
        steps=steps,
        aws_conn_id=AWS_CONN_ID,
        region_name=REGION,
        retries=0,  # a retry could add the step twice
    )
    watch = EmrStepSensor(
        task_id=f"wait_for_{task_id}",
        job_flow_id=CLUSTER_ID,
        # The id of the one step the add task added, as the provider's example_emr.py passes it.
        step_id=f"{{{{ task_instance.xcom_pull(task_ids='{task_id}', key='return_value')[0] }}}}",
        aws_conn_id=AWS_CONN_ID,
        region_name=REGION,
        # The Variable's sensor_mode, poll_interval_seconds and sensor_timeout_seconds (SETTINGS).
        deferrable=SETTINGS.deferrable,
        mode=SETTINGS.mode,
        poke_interval=SETTINGS.poll_interval_seconds,
        timeout=SETTINGS.sensor_timeout_seconds,
        max_attempts=STEP_SENSOR_MAX_ATTEMPTS,
        retries=0,  # a failed step stays failed
    )
    add >> watch
    return add, watch


with DAG(
    dag_id="dag_2",
    dag_display_name="DAG_2 · Hive load and PySpark sort on EMR",
    description="Load Mall_Customers.csv into Hive and write it sorted by spending score as Parquet",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs share the Hive tables and the output location
    is_paused_upon_creation=False,  # only dag_1 triggers it; paused, dag_1 would wait for nothing
    default_args={"retries": 1, "retry_delay": SETTINGS.retry_delay},  # retry_delay_seconds
    params={
        "cluster_id": Param(type="string", minLength=1, description="EMR cluster (from dag_1)"),
        "input_uri": Param(None, type=["null", "string"], description="CSV to load; default: Variable"),
        "output_uri": Param(None, type=["null", "string"], description="Parquet prefix; default: Variable"),
    },
    # Rendering fails with a clear error for an input_uri/output_uri the steps cannot use.
    user_defined_filters={"checked_input_uri": checked_input_uri, "checked_output_uri": checked_output_uri},
    user_defined_macros={"failure_summary_uri": failure_summary_uri},
    tags=["emr", "assignment"],
) as dag:
    chain(*emr_step("load_into_hive", hive_load_steps()), *emr_step("sort_and_write_parquet", sort_steps()))
