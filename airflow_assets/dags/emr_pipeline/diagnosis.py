"""Why a run failed and what it published, read through Airflow's AWS hooks for the outcome mail.

- a cluster that ended on its own with errors (e.g. failed to start): its StateChangeReason;
- a failed step: EMR's FailureDetails (reason, message, log file);
- bad input: the step's own ``error:`` line. With ``--deploy-mode cluster`` the driver's stderr goes
  to YARN container logs that FailureDetails do not quote, so the steps write that line to
  ``failure_summary_uri`` (under the cluster's log prefix), read here;
- success: the published run's pointer (``_LATEST``: run prefix, rows, columns) for the schema.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.amazon.aws.hooks.emr import EmrHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from .steps import failure_summary_uri

# The sort job's published-output pointer (emr_steps/sort_by_spending_score.py LATEST; a test pins both).
LATEST_POINTER = "_LATEST"


def failure_reasons(*, aws_conn_id: str, region: str, cluster_id: str | None, log_uri: str) -> list[str]:
    """One line per known cause, most specific first; empty when nothing on the EMR side failed."""
    if not cluster_id:
        return []
    emr = EmrHook(aws_conn_id=aws_conn_id, region_name=region).conn
    s3 = S3Hook(aws_conn_id=aws_conn_id, region_name=region)
    reasons = []
    for step in emr.list_steps(ClusterId=cluster_id).get("Steps", []):
        if step["Status"]["State"] != "FAILED":
            continue
        summary = failure_summary_uri(log_uri, cluster_id, step["Name"])
        if s3.check_for_key(summary):
            reasons.append(f"{step['Name']}: {s3.read_key(summary).strip()}")
        details = step["Status"].get("FailureDetails", {})
        reasons.append(
            f"{step['Name']} ({step['Id']}) FAILED: {details.get('Reason', 'no reason given')}"
            f" - {details.get('Message', '')} (log: {details.get('LogFile', 'none')})"
        )
    status = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]
    if status["State"] == "TERMINATED_WITH_ERRORS":
        change = status.get("StateChangeReason", {})
        reasons.append(
            f"EMR cluster {cluster_id} TERMINATED_WITH_ERRORS: {change.get('Code', '?')}: {change.get('Message', '')}"
        )
    return reasons


def published_output(*, aws_conn_id: str, region: str, output_uri: str) -> dict[str, Any] | None:
    """The pointer of the published run (run, rows, sorted_by, columns), or None if nothing is published."""
    pointer = output_uri.rstrip("/") + "/" + LATEST_POINTER
    s3 = S3Hook(aws_conn_id=aws_conn_id, region_name=region)
    if not s3.check_for_key(pointer):
        return None
    return json.loads(s3.read_key(pointer))
