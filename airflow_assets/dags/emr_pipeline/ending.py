"""How a dag_1 run may end, and the outcome mail for the endings its ``email_outcome`` task never sees.

Airflow 3.3 (docs/pipeline.md "How a run ends"):

- success or a task failure: ``email_outcome`` (trigger rule ``all_done``) mails, then marks
  ``MAILED_KEY`` in XCom;
- a user marks the run failed (UI, ``PATCH .../dagRuns/{id} {"state": "failed"}``): running tasks are
  set failed and pending ones skipped -- ``email_outcome`` too -- but teardowns are left to run, so the
  cluster is terminated; the scheduler then fails the run and queues the DAG's failure callback;
  (If no task was running at that moment, every leaf is skipped and the scheduler ends the run
  ``success`` and queues the success callback instead; marking it success does the same.)
- ``dagrun_timeout``: the scheduler skips every unfinished task, the teardown included, fails the run and
  queues the failure callback with reason ``timed_out``.

The callback (``mail_unreported_ending``, both the DAG's failure and success callback) runs in the
dag-processor. It mails only when
``email_outcome`` did not, so every ending gets exactly one mail, and it terminates the cluster whenever
the teardown did not succeed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.notifications.ses import SesNotifier
from airflow.sdk import timezone
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
from airflow.sdk.execution_time.xcom import XCom

from .config import AWS_CONN_ID, pipeline_config
from .diagnosis import failure_reasons
from .operators import dag_2_timeout
from .outcome import Outcome, failed_tasks, whole_seconds
from .variable import RUN_TIMEOUT_KEY, DagSettings

log = logging.getLogger(__name__)

# XCom key email_outcome sets once its mail is sent: the failure callback then sends none.
MAILED_KEY = "outcome_mailed"
# What a run needs beyond wait_for_dag_2's own limit: creating the cluster, terminating it, mailing.
RUN_MARGIN_SECONDS = 30 * 60


def run_timeout(settings: DagSettings) -> timedelta:
    """dag_1's ``dagrun_timeout``: the Variable's ``run_timeout_seconds``, else longer than a run can last.

    Read when the DAG is parsed (config.py ``dag_settings``): the scheduler takes ``dagrun_timeout`` from
    the parsed DAG, so an edit applies after the next parse. Without the key the default outlasts
    ``wait_for_dag_2`` (``operators.dag_2_timeout``) by ``RUN_MARGIN_SECONDS``, so a run that can still
    succeed is never cut short.
    """
    if settings.run_timeout_seconds is not None:
        return timedelta(seconds=settings.run_timeout_seconds)
    return timedelta(seconds=dag_2_timeout(settings.sensor_timeout_seconds) + RUN_MARGIN_SECONDS)


def _xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    return XCom.get_one(key=key, dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=-1)


def ending(reason: str, states: dict[str, str | None], *, mail_task: str, timeout: timedelta | None) -> str:
    """Why the run ended without ``email_outcome``'s mail, for the mail's "Ended" row."""
    if reason == "timed_out":
        return (
            f"run timed out after {timeout} (dagrun_timeout, {RUN_TIMEOUT_KEY} in the Variable): "
            "Airflow skipped every unfinished task, the cluster's teardown included"
        )
    if states.get(mail_task) == "skipped":
        # Marking a run failed or success sets its pending tasks skipped alike; Airflow records no more.
        return (
            "marked failed by a user (or success; UI or REST API) before the pipeline finished: Airflow "
            "stopped the running tasks and skipped the pending ones, the outcome task included; the "
            "cluster's teardown still ran"
        )
    return f"the run failed ({reason or 'no reason given'}) before {mail_task} sent its mail ({mail_task}: {states.get(mail_task)})"


def mail_unreported_ending(
    context: dict[str, Any],
    *,
    mail_task: str,
    create_task: str,
    terminate_task: str,
    trigger_task: str,
    data_dag_id: str,
    output_uri_key: str = "output_uri",
) -> None:
    """DAG failure and success callback: unless ``mail_task`` mailed, terminate the cluster and mail the ending."""
    dag, run_id = context["dag"], context["run_id"]
    if _xcom(dag.dag_id, run_id, mail_task, MAILED_KEY):
        log.info("%s already mailed the outcome of %s", mail_task, run_id)
        return
    config = pipeline_config()
    states = RuntimeTaskInstance.get_task_states(dag_id=dag.dag_id, run_ids=[run_id]).get(run_id, {})
    why = ending(context.get("reason", ""), states, mail_task=mail_task, timeout=dag.dagrun_timeout)
    aws = {"aws_conn_id": AWS_CONN_ID, "region": config["region"]}
    cluster_id = _xcom(dag.dag_id, run_id, create_task, "return_value")
    reasons = []
    if cluster_id and states.get(terminate_task) != "success":
        try:
            EmrHook(aws_conn_id=AWS_CONN_ID, region_name=config["region"]).conn.terminate_job_flows(
                JobFlowIds=[cluster_id]
            )
            reasons.append(f"EMR cluster {cluster_id} terminated by the failure callback")
        except Exception as error:  # noqa: BLE001 - the mail must still go out, and name the problem
            reasons.append(f"EMR cluster {cluster_id} could NOT be terminated: {error}")
    try:
        reasons += failure_reasons(**aws, cluster_id=cluster_id, log_uri=config["log_uri"])
    except Exception as error:  # noqa: BLE001 - as in email_outcome: the mail goes out regardless
        reasons.append(f"failure details unavailable: {error}")
    failures = failed_tasks(dag.dag_id, states)
    triggered_run_id = _xcom(dag.dag_id, run_id, trigger_task, "trigger_run_id")
    if triggered_run_id:
        data_states = RuntimeTaskInstance.get_task_states(dag_id=data_dag_id, run_ids=[triggered_run_id])
        failures += failed_tasks(data_dag_id, data_states.get(triggered_run_id, {}))
    dag_run = context.get("dag_run")
    start, end = getattr(dag_run, "start_date", None), getattr(dag_run, "end_date", None) or timezone.utcnow()
    run_conf = getattr(dag_run, "conf", None) or {}
    outcome = Outcome(
        dag_id=dag.dag_id,
        run_id=run_id,
        cluster_id=cluster_id,
        triggered_run_id=triggered_run_id,
        output_uri=run_conf.get(output_uri_key) or config[output_uri_key],
        duration=whole_seconds(end - start) if start else None,
        failed_tasks=failures,
        reasons=reasons,
        ended=why,
    )
    # Called directly, not through the notifier's template rendering: the HTML is final.
    SesNotifier(
        aws_conn_id=AWS_CONN_ID,
        region_name=config["region"],
        mail_from=config["sender_email"],
        to=config["alert_email"],
        subject=outcome.subject,
        html_content=outcome.html(),
    ).notify(context)
    log.info("mailed the %s ending of %s: %s", outcome.verdict, run_id, why)


def unreported_ending_mailer(**tasks: str):
    """The DAG callback: ``mail_unreported_ending`` for the given task ids (a named function, as logs show)."""

    def mail_unreported_ending_of_dag_1(context: dict[str, Any]) -> None:
        mail_unreported_ending(context, **tasks)

    return mail_unreported_ending_of_dag_1
