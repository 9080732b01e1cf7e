"""Operator variants the pipeline needs beyond the providers' defaults."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import timezone

from .config import pipeline
from .steps import STEP_NAMES

# dag_2's sequential step waits (load, sort) and what its scheduling may add on top of them.
DAG_2_STEP_WAITS = len(STEP_NAMES)
DAG_2_SCHEDULING_MARGIN_SECONDS = 30 * 60

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


class _PollsAsConfigured:
    """Take the sensor mode, poke interval and timeout from the pipeline configuration at run time.

    ``sensor_mode`` (contracts section 1):

    - ``deferrable`` (default): after at most one check on the worker the wait is handed to the
      triggerer, so no worker slot is held while EMR works and there are no reschedule round-trips,
      which in Airflow 3.3 hit apache/airflow#71172;
    - ``reschedule``: a short poke per interval, the slot freed in between;
    - ``poke``: holds a worker slot for the whole wait (the local rehearsal used it to dodge #71172).

    Runs at the start of every try (in reschedule mode: every poke), so a changed Variable takes effect
    at once. The resumption after a deferral goes to ``execute_complete`` and needs none of this.
    """

    def execute(self, context):
        self.poll_as_configured()
        return super().execute(context)

    def poll_as_configured(self) -> None:
        config = pipeline()  # rejects an unknown sensor_mode
        self.deferrable = config.sensor_mode == "deferrable"
        if not self.deferrable:
            self.mode = config.sensor_mode
        self.poke_interval = float(config.poll_interval_seconds)
        self.timeout = float(config.sensor_timeout_seconds)


class ConfiguredExternalTaskSensor(_PollsAsConfigured, ExternalTaskSensor):
    """ExternalTaskSensor waiting as configured, for longer than dag_2 can take.

    dag_2 runs ``DAG_2_STEP_WAITS`` step sensors one after the other, each allowed the configured
    timeout; this sensor allows all of them plus ``DAG_2_SCHEDULING_MARGIN_SECONDS`` for scheduling
    and adding the steps, so it never gives up on a dag_2 run that may still succeed.

    Deferred, the provider evaluates ``execution_date_fn`` before deferring and hands the resulting
    logical dates to its ``WorkflowTrigger``, which reports a run in ``failed_states`` as a failure;
    the deferral's timeout is the configured one.
    """

    def poll_as_configured(self) -> None:
        super().poll_as_configured()
        self.timeout = DAG_2_STEP_WAITS * self.timeout + DAG_2_SCHEDULING_MARGIN_SECONDS


class ConfiguredEmrStepSensor(_PollsAsConfigured, EmrStepSensor):
    """EmrStepSensor waiting as configured.

    Deferred, the provider's trigger polls every poke interval for at most ``max_attempts`` polls and
    the deferral times out after their product, so ``max_attempts`` follows the configured timeout.
    """

    def poll_as_configured(self) -> None:
        super().poll_as_configured()
        self.max_attempts = max(1, math.ceil(self.timeout / self.poke_interval))
