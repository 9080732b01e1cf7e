"""State changes on moto's EMR model objects, rendered by moto's own DescribeStep/DescribeCluster.

moto's Step and Cluster render `Status` from properties that know no FailureDetails and no
StateChangeReason code, so the objects the runner touches are switched to subclasses that add them.
"""

from __future__ import annotations

from typing import Any

from moto.core.utils import utcnow
from moto.emr.models import Cluster, Step

TERMINAL_CLUSTER_STATES = frozenset({"TERMINATING", "TERMINATED", "TERMINATED_WITH_ERRORS"})


class _RunnerStep(Step):
    failure_details: dict[str, str] | None = None

    @property
    def status(self) -> dict[str, Any]:
        status = super().status
        if self.failure_details:
            status["FailureDetails"] = dict(self.failure_details)
        return status


class _RunnerCluster(Cluster):
    state_change_code: str | None = None

    @property
    def status(self) -> dict[str, Any]:
        status = super().status
        if self.state_change_code:
            status["StateChangeReason"]["Code"] = self.state_change_code
        return status


def _adopt_step(step: Step) -> _RunnerStep:
    if not isinstance(step, _RunnerStep):
        step.__class__ = _RunnerStep
    return step  # type: ignore[return-value]


def _adopt_cluster(cluster: Cluster) -> _RunnerCluster:
    if not isinstance(cluster, _RunnerCluster):
        cluster.__class__ = _RunnerCluster
    return cluster  # type: ignore[return-value]


def start_step(step: Step) -> None:
    step = _adopt_step(step)
    step.state = "RUNNING"
    step.start()


def finish_step(step: Step, state: str, *, reason: str | None = None, failure: dict[str, str] | None = None) -> None:
    step = _adopt_step(step)
    step.failure_details = failure
    step.last_state_change_reason = reason
    step.end_date_time = utcnow()
    step.state = state


def set_cluster_state(cluster: Cluster, state: str) -> None:
    if cluster.state not in TERMINAL_CLUSTER_STATES:
        cluster.state = state


def terminate_cluster(cluster: Cluster, *, code: str, message: str, with_errors: bool) -> None:
    """Terminate like EMR: TERMINATED (user request, all steps done) or TERMINATED_WITH_ERRORS."""
    cluster = _adopt_cluster(cluster)
    if cluster.state in TERMINAL_CLUSTER_STATES:
        return
    cluster.state_change_code = code
    cluster.last_state_change_reason = message
    cluster.terminate()
    if with_errors:
        cluster.state = "TERMINATED_WITH_ERRORS"


def is_terminated(cluster: Cluster) -> bool:
    return cluster.state in TERMINAL_CLUSTER_STATES
