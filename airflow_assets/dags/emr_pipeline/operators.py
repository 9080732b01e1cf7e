"""Operator variants the pipeline needs beyond the providers' defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import timezone

from .steps import STEP_NAMES

# dag_2's sequential step waits (load, sort) and what its scheduling may add on top of them.
DAG_2_STEP_WAITS = len(STEP_NAMES)
DAG_2_SCHEDULING_MARGIN_SECONDS = 30 * 60


def dag_2_timeout(sensor_timeout_seconds: float) -> float:
    """``wait_for_dag_2``'s timeout: longer than dag_2 can take, so it never gives up on a run that may succeed.

    dag_2 runs ``DAG_2_STEP_WAITS`` step sensors one after the other, each allowed ``sensor_timeout_seconds``;
    this allows all of them plus ``DAG_2_SCHEDULING_MARGIN_SECONDS`` for scheduling and adding the steps.
    """
    return DAG_2_STEP_WAITS * sensor_timeout_seconds + DAG_2_SCHEDULING_MARGIN_SECONDS


# XCom key under which the trigger publishes the logical date of the run it created.
TRIGGERED_LOGICAL_DATE = "trigger_logical_date_iso"


class TriggerFreshDagRunOperator(TriggerDagRunOperator):
    """Trigger a brand-new run on every try, with a unique logical date that is published.

    Airflow 3's ExternalTaskSensor finds the other DAG's run by logical date only, and the standard
    provider's trigger does not publish the date it used. Each try (first run, clear, retry, backfill)
    therefore gets the current time as logical date -- unique per DAG, so no "DAG run already exists"
    and never a stale conf -- and pushes it as XCom for the sensor. Pair it with a unique
    ``trigger_run_id`` (e.g. including ``ti.try_number``).
    """

    def __init__(self, **kwargs: Any) -> None:
        if "logical_date" in kwargs or kwargs.get("reset_dag_run"):
            raise ValueError("TriggerFreshDagRunOperator chooses the logical date and never resets runs")
        super().__init__(**kwargs)

    def execute(self, context):
        logical_date = timezone.utcnow().isoformat()
        self.logical_date = logical_date
        context["ti"].xcom_push(key=TRIGGERED_LOGICAL_DATE, value=logical_date)
        return super().execute(context)


def logical_date_triggered_by(trigger_task_id: str):
    """``execution_date_fn`` for ExternalTaskSensor: the logical date the trigger task published."""

    def triggered_logical_date(_own_logical_date, ti) -> datetime:
        published = ti.xcom_pull(task_ids=trigger_task_id, key=TRIGGERED_LOGICAL_DATE)
        if not published:
            raise ValueError(f"{trigger_task_id} published no logical date; did it run in this DAG run?")
        return datetime.fromisoformat(published)

    return triggered_logical_date


class NoOrphanEmrCreateJobFlowOperator(EmrCreateJobFlowOperator):
    """EmrCreateJobFlowOperator that terminates the cluster it created whenever its try then fails.

    The provider cleans up only after a waiter error; anything else after RunJobFlow succeeded (e.g.
    the DescribeCluster for the log link being refused) fails the task with a live cluster whose id
    never reached XCom, so dag_1's teardown -- which runs only after a successful setup -- cannot
    find it, and it would idle until its AutoTerminationPolicy.
    """

    def execute(self, context):
        self._job_flow_id = None
        try:
            return super().execute(context)
        except BaseException:
            if self._job_flow_id:
                self.log.warning(
                    "Terminating EMR cluster %s: the create task failed after creating it", self._job_flow_id
                )
                self.hook.conn.terminate_job_flows(JobFlowIds=[self._job_flow_id])
            raise
