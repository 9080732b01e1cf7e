"""Helpers shared by the emulator tests (a module of its own: every tests/ folder has a conftest.py,
so `from conftest import ...` would pick whichever folder's conftest was imported first)."""

from __future__ import annotations

from pathlib import Path

from rehearsal.aws import LocalAws
from rehearsal.dataset import DATASET  # noqa: F401  (re-exported to the tests)

FIXTURE_STEPS = Path(__file__).resolve().parent / "steps"
TERMINAL_STEP_STATES = {"COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED"}


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def start_cluster(aws: LocalAws, *, keep_alive: bool = True, **overrides) -> str:
    config = aws.pipeline_config
    request = {
        "Name": "emulator-test",
        "ReleaseLabel": config["release_label"],
        "LogUri": config["log_uri"],
        "ServiceRole": config["service_role"],
        "JobFlowRole": config["job_flow_role"],
        "Applications": [{"Name": "Hadoop"}, {"Name": "Hive"}, {"Name": "Spark"}],
        "Instances": {
            "MasterInstanceType": config["primary_instance_type"],
            "InstanceCount": 1,
            "KeepJobFlowAliveWhenNoSteps": keep_alive,
            "Ec2SubnetId": config["subnet_id"],
            "EmrManagedMasterSecurityGroup": config["emr_managed_primary_sg"],
            "EmrManagedSlaveSecurityGroup": config["emr_managed_core_sg"],
            "ServiceAccessSecurityGroup": config["service_access_sg"],
        },
        # As the DAG tags it: the node role may act only on clusters carrying the stack's tags.
        "Tags": [{"Key": key, "Value": value} for key, value in config["cluster_tags"].items()],
        **overrides,
    }
    return aws.client("emr").run_job_flow(**request)["JobFlowId"]


def command_step(name: str, args: list[str], action_on_failure: str = "CANCEL_AND_WAIT") -> dict:
    return {
        "Name": name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def wait_for_steps(aws: LocalAws, cluster_id: str, step_ids: list[str], *, timeout: float) -> list[dict]:
    emr = aws.client("emr")

    def finished():
        steps = [emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"] for step_id in step_ids]
        return steps if all(step["Status"]["State"] in TERMINAL_STEP_STATES for step in steps) else None

    return wait_for(finished, timeout=timeout, what=f"steps {step_ids} of {cluster_id} to finish")


def cluster_state(aws: LocalAws, cluster_id: str) -> dict:
    return aws.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]
