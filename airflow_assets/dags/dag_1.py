"""DAG_1: the EMR cluster's life -- create it, run dag_2 on it, wait, terminate it, mail the outcome.

Configuration: the Airflow Variable ``emr_pipeline`` (docs/contracts.md), read at run time, except the
keys that are DAG and operator arguments (``dag_settings``), read when this file is parsed.
Failure semantics (docs/pipeline.md): the cluster is always terminated (teardown), exactly one mail is
sent however the run ends (by ``email_outcome``, or by the failure callback when a user marked the run
failed or it timed out), and the run ends ``failed`` whenever any task -- including the termination -- failed.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.hooks.ses import SesHook
from airflow.providers.amazon.aws.operators.emr import EmrTerminateJobFlowOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG, Param, chain, task, timezone
from airflow.sdk.exceptions import AirflowFailException
from airflow.task.trigger_rule import TriggerRule

from emr_pipeline.config import AWS_CONN_ID, CONFIG, dag_settings, pipeline_config, run_setting, setting, templated
from emr_pipeline.diagnosis import failure_reasons, published_output
from emr_pipeline.ending import MAILED_KEY, run_timeout, unreported_ending_mailer
from emr_pipeline.job_flow import job_flow_overrides
from emr_pipeline.operators import (
    NoOrphanEmrCreateJobFlowOperator,
    TriggerFreshDagRunOperator,
    dag_2_timeout,
    logical_date_triggered_by,
)
from emr_pipeline.outcome import Outcome, failed_tasks, whole_seconds

DATA_DAG_ID = "dag_2"
CREATE, TRIGGER, WAIT, TERMINATE, MAIL = (
    "create_emr_cluster",
    "trigger_dag_2",
    "wait_for_dag_2",
    "terminate_emr_cluster",
    "email_outcome",
)
REGION = templated(setting("region"))
# The Variable's keys that are DAG and operator arguments, read when this file is parsed.
SETTINGS = dag_settings()
mail_unreported_ending = unreported_ending_mailer(
    mail_task=MAIL, create_task=CREATE, terminate_task=TERMINATE, trigger_task=TRIGGER, data_dag_id=DATA_DAG_ID
)


@task(task_id=MAIL, trigger_rule=TriggerRule.ALL_DONE)
def email_outcome(output_uri: str, **context) -> None:
    """Mail what happened, then fail if anything failed so the run cannot end green."""
    ti, dag_run = context["ti"], context["dag_run"]
    config = pipeline_config()
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
    states.pop(ti.task_id, None)
    failures = failed_tasks(ti.dag_id, states)
    triggered_run_id = ti.xcom_pull(task_ids=TRIGGER, key="trigger_run_id")
    if triggered_run_id:
        data_states = ti.get_task_states(dag_id=DATA_DAG_ID, run_ids=[triggered_run_id])
        failures += failed_tasks(DATA_DAG_ID, data_states.get(triggered_run_id, {}))
    cluster_id = ti.xcom_pull(task_ids=CREATE)
    aws = {"aws_conn_id": AWS_CONN_ID, "region": config["region"]}
    try:
        reasons = failure_reasons(**aws, cluster_id=cluster_id, log_uri=config["log_uri"]) if failures else []
    except Exception as error:  # noqa: BLE001 - any AWS or hook error: the mail goes out regardless, and says so
        reasons = [f"failure details unavailable: {error}"]
    outcome = Outcome(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        cluster_id=cluster_id,
        triggered_run_id=triggered_run_id,
        output_uri=output_uri,
        duration=whole_seconds(timezone.utcnow() - dag_run.start_date),
        failed_tasks=failures,
        reasons=reasons,
        published=None if failures else published_output(**aws, output_uri=output_uri),
    )
    SesHook(aws_conn_id=AWS_CONN_ID, region_name=config["region"]).send_email(
        mail_from=config["sender_email"],
        to=config["alert_email"],
        subject=outcome.subject,
        html_content=outcome.html(),
    )
    ti.xcom_push(key=MAILED_KEY, value=True)  # the DAG's failure callback then sends no second mail
    if not outcome.succeeded:
        # Teardowns do not count for the run state and this task is the DAG's leaf: without this,
        # a failed termination (or anything else) would end in a green run.
        raise AirflowFailException(f"pipeline failed: {', '.join(failures)}; outcome mailed")


with DAG(
    dag_id="dag_1",
    dag_display_name="DAG_1 · EMR cluster lifecycle",
    description="Create an EMR cluster, run dag_2 on it, terminate it, e-mail the outcome",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs share the Hive tables and the output location
    dagrun_timeout=run_timeout(SETTINGS),
    # A run marked failed by a user or timed out skips email_outcome: these mail instead (emr_pipeline.ending).
    on_failure_callback=mail_unreported_ending,
    on_success_callback=mail_unreported_ending,
    is_paused_upon_creation=False,  # manual-only: unpaused costs nothing and avoids a silent first run
    default_args={"retries": 1, "retry_delay": SETTINGS.retry_delay},  # retry_delay_seconds
    params={
        "input_uri": Param(None, type=["null", "string"], description="CSV to load; default: Variable"),
        "output_uri": Param(None, type=["null", "string"], description="Parquet prefix; default: Variable"),
    },
    user_defined_macros={"job_flow_overrides": job_flow_overrides},
    # Templates render to Python objects: the RunJobFlow request reaches the operator as the dict
    # job_flow_overrides() returns, not as text the operator has to literal_eval back.
    render_template_as_native_obj=True,
    tags=["emr", "assignment"],
) as dag:
    create = NoOrphanEmrCreateJobFlowOperator(
        task_id=CREATE,
        emr_conn_id=None,
        aws_conn_id=AWS_CONN_ID,
        region_name=REGION,
        # Checked against emr_pipeline/variable.py when the task runs.
        job_flow_overrides=templated(f"job_flow_overrides({CONFIG}, run_id)"),
        # Never retried: a retry after RunJobFlow succeeded (and the try failed later) would create a
        # second cluster, and the teardown only terminates the one in the last try's XCom.
        retries=0,
    )
    trigger = TriggerFreshDagRunOperator(
        task_id=TRIGGER,
        trigger_dag_id=DATA_DAG_ID,
        trigger_run_id="dag_1__{{ run_id }}__try{{ ti.try_number }}",
        conf={
            "cluster_id": create.output,
            "input_uri": templated(run_setting("input_uri")),
            "output_uri": templated(run_setting("output_uri")),
        },
        wait_for_completion=False,
        fail_when_dag_is_paused=True,  # fail now rather than wait for a run that cannot start
        retries=0,  # a retry after the run was created would start a second dag_2 on the same cluster
    )
    wait = ExternalTaskSensor(
        task_id=WAIT,
        external_dag_id=DATA_DAG_ID,
        # Deferred, the sensor evaluates this before deferring and hands the dates to its trigger.
        execution_date_fn=logical_date_triggered_by(TRIGGER),
        allowed_states=["success"],
        failed_states=["failed"],
        # The Variable's sensor_mode, poll_interval_seconds and sensor_timeout_seconds (SETTINGS).
        deferrable=SETTINGS.deferrable,
        mode=SETTINGS.mode,
        poke_interval=SETTINGS.poll_interval_seconds,
        timeout=dag_2_timeout(SETTINGS.sensor_timeout_seconds),  # outlasts dag_2's step sensors
        retries=0,  # a failed dag_2 stays failed: re-poking would only delay the teardown
    )
    terminate = EmrTerminateJobFlowOperator(
        task_id=TERMINATE,
        job_flow_id=create.output,
        aws_conn_id=AWS_CONN_ID,
        region_name=REGION,
    ).as_teardown(setups=create)
    chain(create, trigger, wait, terminate, email_outcome(output_uri=templated(run_setting("output_uri"))))
