"""RunJobFlow request for the assignment's EMR cluster, built from the pipeline configuration."""

from __future__ import annotations

from typing import Any

from .variable import EmrPipelineVariable

APPLICATIONS = ("Hadoop", "Hive", "Spark")


def instance_groups(config: EmrPipelineVariable) -> list[dict[str, Any]]:
    groups = [
        {
            "Name": "Primary",
            "Market": "ON_DEMAND",
            "InstanceRole": "MASTER",
            "InstanceType": config.primary_instance_type,
            "InstanceCount": 1,
        }
    ]
    core_count = int(config.core_instance_count)
    if core_count > 0:  # EMR rejects a CORE group of size 0; a primary-only cluster simply has none
        groups.append(
            {
                "Name": "Core",
                "Market": "ON_DEMAND",
                "InstanceRole": "CORE",
                "InstanceType": config.core_instance_type,
                "InstanceCount": core_count,
            }
        )
    return groups


def job_flow_overrides(values: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The full RunJobFlow input (EmrCreateJobFlowOperator runs with ``emr_conn_id=None``)."""
    config = EmrPipelineVariable.from_dict(values)
    return {
        "Name": f"dag_1-{run_id}"[:256],
        "ReleaseLabel": config.release_label,
        "Applications": [{"Name": name} for name in APPLICATIONS],
        "LogUri": config.log_uri,
        "Instances": {
            "InstanceGroups": instance_groups(config),
            # DAG_2 adds steps after creation and DAG_1 terminates explicitly.
            "KeepJobFlowAliveWhenNoSteps": True,
            "TerminationProtected": False,
            "Ec2SubnetId": config.subnet_id,
            "EmrManagedMasterSecurityGroup": config.emr_managed_primary_sg,
            "EmrManagedSlaveSecurityGroup": config.emr_managed_core_sg,
            "ServiceAccessSecurityGroup": config.service_access_sg,
        },
        # Cost safety net should the terminate task never run (e.g. the scheduler is down).
        "AutoTerminationPolicy": {"IdleTimeout": int(config.idle_timeout_seconds)},
        "ServiceRole": config.service_role,
        "JobFlowRole": config.job_flow_role,
        "VisibleToAllUsers": True,
        # cluster_tags: the tags the stack's IAM requires on RunJobFlow (docs/contracts.md section 1).
        "Tags": [
            *({"Key": key, "Value": value} for key, value in config.cluster_tags.items()),
            {"Key": "airflow:dag_id", "Value": "dag_1"},
            {"Key": "airflow:run_id", "Value": run_id[:256]},
        ],
    }
