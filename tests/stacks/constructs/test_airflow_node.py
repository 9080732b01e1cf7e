"""AirflowNode: AL2023, IMDSv2, SSM only, encrypted root, cfn-init bootstrap, health-gated.

stacks/constructs/airflow_node.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.assertions import Template

from stacks.cfn_values import render
from stacks.config import REPO_ROOT
from stacks.constructs.airflow_node import BOOTSTRAP_ENV, AirflowNode, ClusterEnvironment
from stacks.constructs.broker import Broker
from stacks.constructs.database import MetadataDatabase
from stacks.constructs.secrets import AirflowSecrets

from ..infra_support import parse_env, stack_with_vpc

DESTROY = cdk.RemovalPolicy.DESTROY


def cluster_environment(stack, vpc, clients) -> ClusterEnvironment:
    subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
    database = MetadataDatabase(
        stack,
        "Db",
        vpc=vpc,
        subnets=subnets,
        clients=clients,
        instance_type="t4g.micro",
        multi_az=False,
        removal_policy=DESTROY,
    )
    broker = Broker(
        stack,
        "Broker",
        vpc=vpc,
        subnet_ids=[subnet.subnet_id for subnet in vpc.private_subnets],
        clients=clients,
        node_type="cache.t4g.micro",
        multi_az=False,
        removal_policy=DESTROY,
    )
    return ClusterEnvironment(
        stage="dev",
        region="us-west-2",
        executor="CeleryExecutor",
        scheduler_count=1,
        api_server_workers=2,
        database=database,
        broker=broker,
        secrets=AirflowSecrets(stack, "Secrets", removal_policy=DESTROY, with_flower=True),
        remote_log_uri="s3://logs/airflow/",
        emr_pipeline_json='{"a":1}',
    )


def node_template(termination_protection=False):
    stack, vpc, clients = stack_with_vpc()
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    assets = s3_assets.Asset(stack, "Assets", path=str(REPO_ROOT / "airflow_assets"))
    AirflowNode(
        stack,
        "Worker",
        role_name="worker",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        security_groups=[clients],
        instance_type="t3.large",
        iam_role=role,
        assets=assets,
        environment=cluster_environment(stack, vpc, clients),
        api_server_host="api-server.airflow.internal",
        ca_bundles={"/etc/pki/x/ca.pem": "https://ca.example.com/ca.pem"},
        fstab_line="fs-1:/ /mnt/efs/airflow efs _netdev,tls,iam 0 0",
        mount_point="/mnt/efs/airflow",
        termination_protection=termination_protection,
    )
    return stack, Template.from_stack(stack)


def test_airflow_node_al2023_imdsv2_ssm_only_encrypted_root_and_health_gated():
    stack, t = node_template()
    ((logical_id, instance),) = t.find_resources("AWS::EC2::Instance").items()
    props = instance["Properties"]
    assert instance["CreationPolicy"] == {"ResourceSignal": {"Count": 1, "Timeout": "PT40M"}}
    assert "KeyName" not in props
    assert props["InstanceType"] == "t3.large"
    assert "al2023" in str(t.to_json()["Parameters"]).lower()
    assert props["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/xvda",
            "Ebs": {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 30, "VolumeType": "gp3"},
        }
    ]
    assert props["Monitoring"] is True and props["DisableApiTermination"] is False
    t.has_resource_properties(
        "AWS::EC2::LaunchTemplate", {"LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "required"}}}
    )
    user_data = str(props["UserData"])
    assert "/opt/aws/bin/cfn-init -v" in user_data and "-c airflow" in user_data
    assert "/opt/aws/bin/cfn-signal -e $?" in user_data
    init = instance["Metadata"]["AWS::CloudFormation::Init"]
    assert init["configSets"] == {"airflow": ["clean", "files", "bootstrap"]}
    bootstrap = init["bootstrap"]["commands"]["20-bootstrap"]
    assert bootstrap["command"] == "bash /opt/airflow/assets/bootstrap/worker.sh all"
    # cfn-init's env replaces the environment: the bootstrap's runs get exactly this (test_bootstrap_seam runs it so).
    assert bootstrap["env"] == BOOTSTRAP_ENV and bootstrap["env"]["NODE_ENV_FILE"] == "/etc/airflow/node.env"
    files = init["files"]
    assert "/opt/airflow/assets" in files["sources"]
    env = parse_env(render(files["files"]["/etc/airflow/node.env"]["content"]))
    assert env["AIRFLOW_ROLE"] == "worker" and env["API_SERVER_HOST"] == "api-server.airflow.internal"
    assert env["EMR_PIPELINE_JSON"] == '{"a":1}' and env["REMOTE_LOG_URI"] == "s3://logs/airflow/"
    # Endpoints and secrets are the constructs' own, by reference: ARNs, never values.
    assert env["DB_HOST"].startswith("<DbInstance") and env["REDIS_HOST"].startswith("<BrokerReplicationGroup")
    assert env["FERNET_KEY_SECRET_ID"].startswith("<SecretsFernetSeed")
    assert files["files"]["/etc/airflow/node.env"]["mode"] == "000640"
    assert files["files"]["/etc/pki/x/ca.pem"] == {
        "source": "https://ca.example.com/ca.pem",
        "mode": "000644",
        "owner": "root",
        "group": "root",
    }
    assert (
        files["files"]["/opt/airflow/requirements-airflow.txt"]["content"]
        == (REPO_ROOT / "requirements-airflow.txt").read_text()
    )
    assert "amazon-efs-utils" in files["packages"]["yum"]
    mount = str(files["commands"]["10-mount-efs"]["command"])
    assert "/etc/fstab" in mount and "tls,iam" in mount
    hook = str(files["files"]["/etc/cfn/hooks.d/cfn-auto-reloader.conf"]["content"])
    assert f"path=Resources.{logical_id}.Metadata.AWS::CloudFormation::Init" in hook and "-c airflow" in hook
    assert files["services"]["systemd"]["cfn-hup"]["enabled"] is True


def test_airflow_node_prod_enables_termination_protection():
    _, t = node_template(termination_protection=True)
    t.has_resource_properties("AWS::EC2::Instance", {"DisableApiTermination": True})


def test_airflow_node_rejects_unknown_roles():
    stack, vpc, clients = stack_with_vpc()
    with pytest.raises(ValueError, match="unknown Airflow role 'webserver'"):
        AirflowNode(
            stack,
            "X",
            role_name="webserver",
            vpc=vpc,
            subnets=ec2.SubnetSelection(),
            security_groups=[clients],
            instance_type="t3.small",
            iam_role=iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com")),
            assets=s3_assets.Asset(stack, "A", path=str(REPO_ROOT / "airflow_assets")),
            environment=cluster_environment(stack, vpc, clients),
            api_server_host="127.0.0.1",
            ca_bundles={},
            fstab_line="",
            mount_point="/m",
            termination_protection=False,
        )
