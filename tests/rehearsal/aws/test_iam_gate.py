"""IAM enforced in the emulator: calls made with the node role's key, decided by the synthesized template."""

from __future__ import annotations

import sys

import pytest
from botocore.exceptions import ClientError

from rehearsal.aws.local_aws import EMR_INSTANCE_ACCESS_KEY, NODE_ROLE_ACCESS_KEY, node_access_key
from rehearsal.aws.seed import EC2_ROLE
from stacks import s3_layout
from stacks.config import REPO_ROOT

from .emulator_support import start_cluster

RUN_ID = "manual__2026-01-01T00:00:00+00:00"
MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"


@pytest.fixture(scope="module")
def job_flow_overrides():
    dags = str(REPO_ROOT / "airflow_assets" / "dags")
    sys.path.insert(0, dags)
    from emr_pipeline.job_flow import job_flow_overrides

    yield job_flow_overrides
    sys.path.remove(dags)


def node(aws, service):
    return aws.client(service, access_key=NODE_ROLE_ACCESS_KEY)


def stack_tag(aws) -> str:
    (key,) = [key for key in aws.pipeline_config["cluster_tags"] if key != MANAGED_POLICY_TAG]
    return key


def denied(excinfo, code: str) -> str:
    error = excinfo.value.response["Error"]
    assert error["Code"] == code, error
    return error["Message"]


def node_role_arn_prefix(aws) -> str:
    return f"User: arn:aws:sts::{aws.account_id}:assumed-role/"


def test_the_dags_run_job_flow_is_allowed_and_counted(local_aws, job_flow_overrides):
    before = local_aws.iam_report()
    request = job_flow_overrides(local_aws.pipeline_config, RUN_ID)
    cluster_id = node(local_aws, "emr").run_job_flow(**request)["JobFlowId"]
    node(local_aws, "emr").terminate_job_flows(JobFlowIds=[cluster_id])
    after = local_aws.iam_report()
    assert after["enforced"] and after["calls"] == before["calls"] + 2
    assert after["denied"] == before["denied"]


def test_run_job_flow_without_the_stack_tag_is_denied_naming_principal_action_and_resource(
    local_aws, job_flow_overrides
):
    request = job_flow_overrides(local_aws.pipeline_config, RUN_ID)
    request["Tags"] = [tag for tag in request["Tags"] if tag["Key"] != stack_tag(local_aws)]
    with pytest.raises(ClientError) as excinfo:
        node(local_aws, "emr").run_job_flow(**request)
    message = denied(excinfo, "AccessDeniedException")
    assert message.startswith(node_role_arn_prefix(local_aws))
    assert "NodeRole" in message.split(" is not authorized")[0]
    assert message.endswith(
        "is not authorized to perform: elasticmapreduce:RunJobFlow on resource: * "
        "because no identity-based policy allows the elasticmapreduce:RunJobFlow action"
    )
    last = local_aws.iam_report()["denied"][-1]
    assert (
        last["action"] == "elasticmapreduce:RunJobFlow" and last["resource"] == "*" and "NodeRole" in last["principal"]
    )


def test_passing_a_role_the_template_does_not_grant_is_denied(local_aws, job_flow_overrides):
    request = {**job_flow_overrides(local_aws.pipeline_config, RUN_ID), "ServiceRole": "SomeAdminRole"}
    with pytest.raises(ClientError) as excinfo:
        node(local_aws, "emr").run_job_flow(**request)
    assert "perform: iam:PassRole on resource: arn:aws:iam::" in denied(excinfo, "AccessDeniedException")


def test_terminating_a_cluster_not_tagged_as_ours_is_denied(local_aws):
    foreign = start_cluster(local_aws, Tags=[{"Key": "team", "Value": "analytics"}])  # the rehearsal's own key
    with pytest.raises(ClientError) as excinfo:
        node(local_aws, "emr").terminate_job_flows(JobFlowIds=[foreign])
    message = denied(excinfo, "AccessDeniedException")
    assert f"elasticmapreduce:TerminateJobFlows on resource: arn:aws:elasticmapreduce:{local_aws.region}:" in message
    assert message.split("resource: ")[1].startswith("arn:") and f"cluster/{foreign} " in message
    state = local_aws.client("emr").describe_cluster(ClusterId=foreign)["Cluster"]["Status"]["State"]
    assert state not in ("TERMINATING", "TERMINATED")


def test_get_object_outside_the_granted_prefix_is_denied(local_aws):
    config = local_aws.pipeline_config
    bucket, input_key = config["input_uri"].removeprefix("s3://").split("/", 1)
    local_aws.upload_bytes(b"not for the nodes", f"s3://{bucket}/private/payroll.csv")
    s3 = node(local_aws, "s3")
    assert s3.get_object(Bucket=bucket, Key=input_key)["Body"].read()
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket, Key="private/payroll.csv")
    message = denied(excinfo, "AccessDenied")
    assert f"s3:GetObject on resource: arn:aws:s3:::{bucket}/private/payroll.csv because" in message
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket=bucket, Prefix="private/")
    assert "s3:ListBucket" in denied(excinfo, "AccessDenied")


def test_an_operation_the_rehearsal_cannot_map_is_denied(local_aws):
    bucket = local_aws.pipeline_config["input_uri"].removeprefix("s3://").split("/", 1)[0]
    with pytest.raises(ClientError) as excinfo:
        node(local_aws, "s3").get_bucket_policy(Bucket=bucket)
    assert "rehearsal cannot map s3.GET ?policy" in denied(excinfo, "AccessDenied")


def test_an_unknown_key_is_refused_and_get_caller_identity_needs_no_permission(local_aws):
    with pytest.raises(ClientError) as excinfo:
        local_aws.client("sts", access_key="AKIDNOBODYKNOWS").get_caller_identity()
    assert denied(excinfo, "InvalidClientTokenId")
    assert node(local_aws, "sts").get_caller_identity()["Account"] == local_aws.account_id


def test_the_node_role_reads_its_secrets_and_sends_as_its_identity_only(local_aws):
    secrets = node(local_aws, "secretsmanager")
    for name, secret_arn in local_aws.secret_ids.items():
        if name == "FLOWER_PASSWORD_SECRET_ID":  # Flower runs on the worker node only
            with pytest.raises(ClientError):
                secrets.get_secret_value(SecretId=secret_arn)
        else:
            assert secrets.get_secret_value(SecretId=secret_arn)["SecretString"]
    other = local_aws.client("secretsmanager").create_secret(Name="someone-elses", SecretString="x")["ARN"]
    with pytest.raises(ClientError) as excinfo:
        secrets.get_secret_value(SecretId=other)
    assert f"secretsmanager:GetSecretValue on resource: {other} because" in denied(excinfo, "AccessDeniedException")
    ses = node(local_aws, "ses")
    local_aws.client("ses").verify_email_identity(EmailAddress="ceo@example.com")
    mail = {
        "Destination": {"ToAddresses": [local_aws.pipeline_config["alert_email"]]},
        "Message": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}},
    }
    ses.send_email(Source=local_aws.pipeline_config["sender_email"], **mail)
    with pytest.raises(ClientError) as excinfo:
        ses.send_email(Source="ceo@example.com", **mail)
    assert "ses:SendEmail on resource: arn:aws:ses:" in denied(excinfo, "AccessDenied")


def test_emr_steps_call_as_the_instance_role(local_aws):
    config = local_aws.pipeline_config
    bucket = config["input_uri"].removeprefix("s3://").split("/", 1)[0]
    s3 = local_aws.client("s3", access_key=EMR_INSTANCE_ACCESS_KEY)
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket, Key=s3_layout.INPUT_KEY, Body=b"overwritten")
    # The template's instance role, bound to the role the seed put in the instance profile.
    assert f"assumed-role/{EC2_ROLE}/" in denied(excinfo, "AccessDenied")


def test_each_node_signs_as_its_own_instance_role_and_the_worker_reads_no_master_secret(local_aws):
    # node.py renders the key the emulator knows each node's instance role by.
    sys.path.insert(0, str(REPO_ROOT / "airflow_assets" / "bootstrap"))
    try:
        import node as bootstrap_node
    finally:
        sys.path.pop(0)
    for role in ("scheduler", "api-server", "worker"):
        env = {
            **bootstrap_node.DEFAULTS,
            "AIRFLOW_ROLE": role,
            "AIRFLOW_HOME": "/opt/airflow",
            "AIRFLOW_VENV": "/opt/airflow/venv",
            "AWS_REGION": "us-west-2",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        }
        uri = bootstrap_node.Node(env, REPO_ROOT / "node.env").aws_connection_uri()
        assert uri.startswith(f"aws://{node_access_key(role)}:"), uri
    # On AWS the worker node runs as WorkerRole: it reads the broker's AUTH token, never the DB master
    # secret, the JWT secret, the Fernet seed or the admin password.
    worker = local_aws.client("secretsmanager", access_key=node_access_key("worker"))
    scheduler = local_aws.client("secretsmanager", access_key=node_access_key("scheduler"))
    ids = local_aws.secret_ids
    assert worker.get_secret_value(SecretId=ids["REDIS_AUTH_SECRET_ID"])["SecretString"]
    for name in ("ADMIN_PASSWORD_SECRET_ID", "DB_SECRET_ID", "JWT_SECRET_SECRET_ID", "FERNET_KEY_SECRET_ID"):
        assert scheduler.get_secret_value(SecretId=ids[name])["SecretString"]
        with pytest.raises(ClientError) as excinfo:
            worker.get_secret_value(SecretId=ids[name])
        assert "/rehearsal-worker is not authorized to perform: secretsmanager:GetSecretValue" in denied(
            excinfo, "AccessDeniedException"
        )
