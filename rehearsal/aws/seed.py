"""Create in the emulator what the CDK stack creates on AWS (docs/contracts.md §1, §3, §5)."""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_assets.dags.emr_pipeline.variable import EmrPipelineVariable
from stacks import s3_layout
from stacks.config import DEFAULTS

# The deployed default (cdk.json); its Spark line decides which local Spark runs the steps.
SEEDED_RELEASE_LABEL = DEFAULTS["emr_release_label"]

RESOURCE_PREFIX = "airflow-emr"
DATA_BUCKET = f"{RESOURCE_PREFIX}-data"
LOGS_BUCKET = f"{RESOURCE_PREFIX}-logs"
CODE_BUCKET = f"{RESOURCE_PREFIX}-code"

SERVICE_ROLE = "AirflowEmr-ServiceRole"
EC2_ROLE = "AirflowEmr-Ec2Role"
# The stack names the instance profile after its role (EMR's JobFlowRole is the profile's name).
INSTANCE_PROFILE = EC2_ROLE
_EMR_SERVICE_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"

_SKIPPED_STEP_FILES = ("__pycache__", ".pyc", ".DS_Store")


# What stacks/ generates: alphanumeric strings (Secrets Manager, ExcludePunctuation) and an
# RDS-managed master secret (30 characters, RDS's default exclusions plus URL/config specials).
_RDS_MASTER_USERNAME = "airflow_admin"
_RDS_PASSWORD_ALPHABET = "".join(
    c for c in string.ascii_letters + string.digits + string.punctuation if c not in "\"@/\\'%:?#&=+ "
)


def _random_string(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _generated_secrets() -> dict[str, tuple[str, str]]:
    """node parameter -> (secret name, value); values are fresh for every emulator."""
    return {
        # contracts §3: a seed the node turns into the Fernet key (Secrets Manager cannot make one).
        "FERNET_KEY_SECRET_ID": ("fernet-key", _random_string(64)),
        "JWT_SECRET_SECRET_ID": ("jwt-secret", _random_string(64)),
        "API_SECRET_KEY_SECRET_ID": ("api-secret-key", _random_string(64)),
        "ADMIN_PASSWORD_SECRET_ID": ("admin-password", _random_string(24)),
        "FLOWER_PASSWORD_SECRET_ID": ("flower-password", _random_string(24)),
        "REDIS_AUTH_SECRET_ID": ("redis-auth", _random_string(64)),
        "DB_SECRET_ID": (
            "db-master",
            json.dumps({"username": _RDS_MASTER_USERNAME, "password": _random_string(30, _RDS_PASSWORD_ALPHABET)}),
        ),
    }


@dataclass(frozen=True)
class SeededResources:
    pipeline_config: dict[str, Any]
    secret_ids: dict[str, str]


def seed(
    clients: Any,
    *,
    region: str,
    dataset: Path,
    emr_steps_dir: Path,
    sender_email: str,
    alert_email: str,
) -> SeededResources:
    """`clients(service)` returns a boto3 client for the emulator."""
    s3 = clients("s3")
    for bucket in (DATA_BUCKET, LOGS_BUCKET, CODE_BUCKET):
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.upload_file(str(dataset), DATA_BUCKET, s3_layout.INPUT_KEY)
    for path in sorted(emr_steps_dir.rglob("*")):
        if path.is_file() and not any(part.endswith(_SKIPPED_STEP_FILES) for part in path.parts):
            s3.upload_file(
                str(path), CODE_BUCKET, s3_layout.EMR_STEPS_PREFIX + path.relative_to(emr_steps_dir).as_posix()
            )

    _create_emr_roles(clients("iam"))
    network = _create_network(clients("ec2"), region)
    clients("ses").verify_email_identity(EmailAddress=sender_email)
    secret_ids = _create_secrets(clients("secretsmanager"))

    uris = s3_layout.PipelineUris.in_buckets(data_bucket=DATA_BUCKET, logs_bucket=LOGS_BUCKET, code_bucket=CODE_BUCKET)
    pipeline_config = EmrPipelineVariable(
        region=region,
        release_label=SEEDED_RELEASE_LABEL,
        service_role=SERVICE_ROLE,
        job_flow_role=INSTANCE_PROFILE,
        **network,
        log_uri=uris.emr_logs,
        steps_uri=uris.steps,
        input_uri=uris.input,
        output_uri=uris.output,
        # The deployed defaults (cdk.json), as the stack renders them without overrides.
        hive_database=DEFAULTS["hive_database"],
        primary_instance_type=DEFAULTS["emr_primary_instance_type"],
        core_instance_type=DEFAULTS["emr_core_instance_type"],
        core_instance_count=DEFAULTS["emr_core_instance_count"],
        idle_timeout_seconds=DEFAULTS["emr_idle_timeout_seconds"],
        # What the stack renders (contracts §1): AmazonEMRServicePolicy_v2's tag and the ownership tag.
        cluster_tags={"for-use-with-amazon-emr-managed-policies": "true", "airflow-emr-stack": "AirflowEmr-rehearsal"},
        sender_email=sender_email,
        alert_email=alert_email,
        **pipeline_tuning(poll_interval=1),
    ).to_dict()
    return SeededResources(pipeline_config=pipeline_config, secret_ids=secret_ids)


def pipeline_tuning(poll_interval: float) -> dict[str, float]:
    """Rehearsal-only values of optional Variable keys (contracts §1; docs/emulator.md) so a run and a drill
    stay short: the sensors check every `poll_interval` seconds, and a failed try is retried after 5 s, not
    the product's 60 s (the worker-kill drill waits for that retry). Every other key is the stack's."""
    return {"poll_interval_seconds": poll_interval, "retry_delay_seconds": 5}


def _create_emr_roles(iam: Any) -> None:
    def trust(service: str) -> str:
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
            }
        )

    iam.create_role(RoleName=SERVICE_ROLE, AssumeRolePolicyDocument=trust("elasticmapreduce.amazonaws.com"))
    # moto loads AWS-managed policies only on request; the role itself is what EMR checks.
    with contextlib.suppress(iam.exceptions.NoSuchEntityException):
        iam.attach_role_policy(RoleName=SERVICE_ROLE, PolicyArn=_EMR_SERVICE_POLICY_ARN)
    iam.create_role(RoleName=EC2_ROLE, AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
    iam.put_role_policy(
        RoleName=EC2_ROLE,
        PolicyName="pipeline-buckets",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                        "Resource": [
                            f"arn:aws:s3:::{bucket}{suffix}"
                            for bucket in (DATA_BUCKET, LOGS_BUCKET, CODE_BUCKET)
                            for suffix in ("", "/*")
                        ],
                    }
                ],
            }
        ),
    )
    iam.create_instance_profile(InstanceProfileName=INSTANCE_PROFILE)
    iam.add_role_to_instance_profile(InstanceProfileName=INSTANCE_PROFILE, RoleName=EC2_ROLE)


def _create_network(ec2: Any, region: str) -> dict[str, str]:
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.42.1.0/24", AvailabilityZone=f"{region}a")["Subnet"][
        "SubnetId"
    ]

    def group(name: str, description: str) -> str:
        return ec2.create_security_group(GroupName=name, Description=description, VpcId=vpc_id)["GroupId"]

    return {
        "subnet_id": subnet_id,
        "emr_managed_primary_sg": group(f"{RESOURCE_PREFIX}-emr-primary", "EMR managed, primary"),
        "emr_managed_core_sg": group(f"{RESOURCE_PREFIX}-emr-core", "EMR managed, core and task"),
        "service_access_sg": group(f"{RESOURCE_PREFIX}-emr-service-access", "EMR service access"),
    }


def _create_secrets(secretsmanager: Any) -> dict[str, str]:
    ids = {}
    for parameter, (name, value) in _generated_secrets().items():
        created = secretsmanager.create_secret(Name=f"{RESOURCE_PREFIX}/{name}", SecretString=value)
        ids[parameter] = created["ARN"]
    return ids
