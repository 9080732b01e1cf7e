"""Each construct built alone in a bare stack, asserted with aws_cdk.assertions."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.assertions import Match, Template

from stacks.config import REPO_ROOT
from stacks.constructs.airflow_node import BOOTSTRAP_ENV, AirflowNode
from stacks.constructs.broker import PORT as REDIS_PORT
from stacks.constructs.broker import Broker
from stacks.constructs.buckets import Buckets
from stacks.constructs.database import PORT as DB_PORT
from stacks.constructs.database import MetadataDatabase
from stacks.constructs.emr_network import EmrSecurityGroups
from stacks.constructs.emr_roles import EmrRoles
from stacks.constructs.mail import Mail
from stacks.constructs.network import Network
from stacks.constructs.node_role import EMR_CLUSTER_ACTIONS, AirflowNodeRole
from stacks.constructs.secrets import AirflowSecrets
from stacks.constructs.shared_fs import SharedFileSystem

DESTROY = cdk.RemovalPolicy.DESTROY


def bare_stack() -> cdk.Stack:
    # The app's feature flags (cdk.json) apply to constructs tested alone, too.
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return cdk.Stack(cdk.App(context=context), "Bare", env=cdk.Environment(region="us-west-2"))


def stack_with_vpc():
    stack = bare_stack()
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    clients = ec2.SecurityGroup(stack, "Clients", vpc=vpc)
    return stack, vpc, clients


def ingress_from(template: Template, port: int) -> dict:
    rules = template.find_resources(
        "AWS::EC2::SecurityGroupIngress", {"Properties": {"FromPort": port, "ToPort": port}}
    )
    assert len(rules) == 1, rules
    return next(iter(rules.values()))["Properties"]


def test_network_two_azs_nat_flow_logs_s3_endpoint_and_emr_tags():
    stack = bare_stack()
    Network(stack, "Net", nat_gateways=1, removal_policy=DESTROY)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::EC2::Subnet", 4)
    t.resource_count_is("AWS::EC2::NatGateway", 1)
    t.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    t.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway", "ServiceName": Match.object_like({})}
    )
    private = t.find_resources("AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": False}})
    assert len(private) == 2
    for subnet in private.values():
        assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in subnet["Properties"]["Tags"]


def test_network_nodes_group_admits_only_itself_on_airflow_ports():
    stack = bare_stack()
    net = Network(stack, "Net", nat_gateways=2, removal_policy=DESTROY)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::EC2::NatGateway", 2)
    node_sg = stack.resolve(net.airflow_nodes_sg.security_group_id)
    rules = t.find_resources("AWS::EC2::SecurityGroupIngress")
    assert sorted(r["Properties"]["FromPort"] for r in rules.values()) == [8080, 8793, 8794]
    for rule in rules.values():
        assert rule["Properties"]["SourceSecurityGroupId"] == node_sg


def test_network_ui_access_group_opens_only_the_ui_port_to_the_given_cidr():
    stack = bare_stack()
    net = Network(stack, "Net", nat_gateways=1, removal_policy=DESTROY)
    net.ui_access_sg("10.20.0.0/16")
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupIngress": [
                Match.object_like({"CidrIp": "10.20.0.0/16", "FromPort": 8080, "ToPort": 8080, "IpProtocol": "tcp"})
            ]
        },
    )


@pytest.mark.parametrize("multi_az", [False, True])
def test_database_mysql_84_tls_only_encrypted_and_private(multi_az):
    stack, vpc, clients = stack_with_vpc()
    db = MetadataDatabase(
        stack,
        "Db",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        clients=clients,
        instance_type="t4g.micro",
        multi_az=multi_az,
        removal_policy=cdk.RemovalPolicy.RETAIN if multi_az else DESTROY,
    )
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "mysql",
            "EngineVersion": "8.4",
            "AutoMinorVersionUpgrade": True,
            "StorageEncrypted": True,
            "PubliclyAccessible": False,
            "MultiAZ": multi_az,
            "DeletionProtection": multi_az,
            "Port": str(DB_PORT),
            "DBInstanceClass": "db.t4g.micro",
            "EnableIAMDatabaseAuthentication": True,
            "BackupRetentionPeriod": 7 if multi_az else 1,
            "MasterUserPassword": Match.object_like({"Fn::Join": Match.any_value()}),
        },
    )
    t.has_resource_properties(
        "AWS::RDS::DBParameterGroup",
        {
            "Family": "mysql8.4",
            "Parameters": {
                "require_secure_transport": "1",
                "explicit_defaults_for_timestamp": "1",
                "character_set_server": "utf8mb4",
                "collation_server": "utf8mb4_0900_ai_ci",
            },
        },
    )
    rule = ingress_from(t, DB_PORT)
    assert rule["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.has_resource_properties(
        "AWS::SecretsManager::Secret", {"GenerateSecretString": Match.object_like({"GenerateStringKey": "password"})}
    )
    password = str(t.find_resources("AWS::RDS::DBInstance"))
    assert "resolve:secretsmanager" in password
    assert stack.resolve(db.secret.secret_arn)


@pytest.mark.parametrize("multi_az", [False, True])
def test_broker_tls_encrypted_auth_from_secrets_manager(multi_az):
    stack, vpc, clients = stack_with_vpc()
    Broker(
        stack,
        "Broker",
        vpc=vpc,
        subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
        clients=clients,
        node_type="cache.t4g.micro",
        multi_az=multi_az,
        removal_policy=DESTROY,
    )
    t = Template.from_stack(stack)
    groups = t.find_resources("AWS::ElastiCache::ReplicationGroup")
    (props,) = [g["Properties"] for g in groups.values()]
    assert props["Engine"] == "redis"
    assert props["TransitEncryptionEnabled"] is True and props["AtRestEncryptionEnabled"] is True
    assert props["Port"] == REDIS_PORT
    assert props["NumCacheClusters"] == (2 if multi_az else 1)
    assert props["MultiAZEnabled"] is multi_az and props["AutomaticFailoverEnabled"] is multi_az
    secret_logical_id = next(iter(t.find_resources("AWS::SecretsManager::Secret")))
    assert props["AuthToken"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_logical_id}, ":SecretString:::}}"]]
    }
    t.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": {"ExcludePunctuation": True, "IncludeSpace": False, "PasswordLength": 64}},
    )
    rule = ingress_from(t, REDIS_PORT)
    assert rule["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.resource_count_is("AWS::ElastiCache::SubnetGroup", 1)


def test_shared_fs_encrypted_access_point_nfs_from_clients_and_fstab_line():
    stack, vpc, clients = stack_with_vpc()
    fs = SharedFileSystem(
        stack,
        "Fs",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        clients=clients,
        removal_policy=DESTROY,
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    fs.grant_mount(role)
    t = Template.from_stack(stack)
    t.has_resource_properties("AWS::EFS::FileSystem", {"Encrypted": True})
    t.has_resource_properties(
        "AWS::EFS::AccessPoint",
        {"RootDirectory": {"Path": "/airflow", "CreationInfo": Match.object_like({"Permissions": "0775"})}},
    )
    assert ingress_from(t, 2049)["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]})
                ]
            }
        },
    )
    line = str(stack.resolve(fs.fstab_line))
    assert " efs _netdev,noresvport,tls,iam,accesspoint=" in line


@pytest.mark.parametrize(("policy", "auto_delete"), [(DESTROY, True), (cdk.RemovalPolicy.RETAIN, False)])
def test_buckets_private_ssl_encrypted_logged(policy, auto_delete):
    stack = bare_stack()
    buckets = Buckets(stack, "B", removal_policy=policy)
    t = Template.from_stack(stack)
    all_buckets = t.find_resources("AWS::S3::Bucket")
    assert len(all_buckets) == 4
    access_logs = stack.resolve(buckets.access_logs.bucket_name)
    for logical_id, bucket in all_buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        )
        assert (
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
                "SSEAlgorithm"
            ]
            == "AES256"
        )
        assert bucket["DeletionPolicy"] == ("Delete" if auto_delete else "Retain")
        if {"Ref": logical_id} != access_logs:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == access_logs
    for policy_doc in t.find_resources("AWS::S3::BucketPolicy").values():
        statements = policy_doc["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        )
    t.resource_count_is("Custom::S3AutoDeleteObjects", 4 if auto_delete else 0)


def test_emr_security_groups_predeclare_every_rule_emr_adds():
    stack, vpc, _ = stack_with_vpc()
    groups = EmrSecurityGroups(stack, "Emr", vpc=vpc)
    t = Template.from_stack(stack)
    ids = {
        name: stack.resolve(getattr(groups, name).security_group_id) for name in ("primary", "core", "service_access")
    }
    ingress = [r["Properties"] for r in t.find_resources("AWS::EC2::SecurityGroupIngress").values()]

    def has(target, source, protocol, low, high):
        return any(
            r["GroupId"] == ids[target]
            and r["SourceSecurityGroupId"] == ids[source]
            and r["IpProtocol"] == protocol
            and r["FromPort"] == low
            and r["ToPort"] == high
            for r in ingress
        )

    for target in ("primary", "core"):
        for source in ("primary", "core"):
            assert has(target, source, "tcp", 0, 65535)
            assert has(target, source, "udp", 0, 65535)
            assert has(target, source, "icmp", -1, -1)
        assert has(target, "service_access", "tcp", 8443, 8443)
    assert has("service_access", "primary", "tcp", 9443, 9443)
    assert len(ingress) == 15
    egress = [r["Properties"] for r in t.find_resources("AWS::EC2::SecurityGroupEgress").values()]
    assert sorted((e["DestinationSecurityGroupId"] == ids["primary"], e["FromPort"]) for e in egress) == [
        (False, 8443),
        (True, 8443),
    ]
    for group in t.find_resources("AWS::EC2::SecurityGroup").values():
        if "EMR managed" in group["Properties"]["GroupDescription"]:
            assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in group["Properties"]["Tags"]


def test_emr_roles_service_policy_v2_pass_role_and_emrfs_scoped_instance_role():
    stack = bare_stack()
    roles = EmrRoles(
        stack,
        "Emr",
        readable=["s3://data/input/mall_customers/Mall_Customers.csv"],
        writable=["s3://data/output/x/", "s3://logs/emr/"],
        cluster_tag=("airflow-emr-stack", "S"),
    )
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Service": "elasticmapreduce.amazonaws.com"}})]
            },
            "ManagedPolicyArns": [
                {
                    "Fn::Join": [
                        "",
                        ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"],
                    ]
                }
            ],
        },
    )
    role_name = stack.resolve(roles.instance_role.role_name)
    t.has_resource_properties("AWS::IAM::InstanceProfile", {"Roles": [role_name], "InstanceProfileName": role_name})
    policies = t.find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    pass_role = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert len(pass_role) == 1 and pass_role[0]["Resource"] == stack.resolve(roles.instance_role.role_arn)
    assert pass_role[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    rendered = str(stack.resolve(statements))
    assert (
        ":s3:::data/input/mall_customers/Mall_Customers.csv" in rendered
        and ":s3:::data/input/mall_customers/*" not in rendered
    )
    assert ":s3:::data/output/x/*" in rendered and ":s3:::logs/emr/*" in rendered
    assert ":s3:::data/output/x_$folder$" in rendered and ":s3:::logs/emr_$folder$" in rendered
    assert "s3:*" not in rendered and "'Resource': '*'" not in rendered
    get_input = next(s for s in statements if "Mall_Customers.csv" in str(s["Resource"]))
    assert get_input["Action"] == "s3:GetObject", "the input is read-only for EMR"


def test_node_role_emr_grants_are_conditioned_on_tags_and_pass_only_the_two_emr_roles():
    stack = bare_stack()
    role = AirflowNodeRole(stack, "Node")
    service = iam.Role(stack, "Svc", assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"))
    instance = iam.Role(stack, "Inst", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    role.allow_emr_job_flows(service_role=service, instance_role=instance)
    t = Template.from_stack(stack)
    statements = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"]
    run = next(s for s in statements if s["Action"] == "elasticmapreduce:RunJobFlow")
    assert run["Resource"] == "*"
    assert run["Condition"] == {
        "StringEquals": {
            "aws:RequestTag/for-use-with-amazon-emr-managed-policies": "true",
            "aws:RequestTag/airflow-emr-stack": "Bare",
        }
    }
    clusters = next(s for s in statements if sorted(s["Action"]) == sorted(EMR_CLUSTER_ACTIONS))
    assert str(clusters["Resource"]).endswith(":cluster/*']]}")
    assert clusters["Condition"] == {"StringEquals": {"aws:ResourceTag/airflow-emr-stack": "Bare"}}
    passing = {str(s["Resource"]): s["Condition"] for s in statements if s["Action"] == "iam:PassRole"}
    assert passing == {
        str(stack.resolve(service.role_arn)): {
            "StringEquals": {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}
        },
        str(stack.resolve(instance.role_arn)): {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
    }
    t.has_resource_properties(
        "AWS::IAM::Role",
        {
            "ManagedPolicyArns": [
                Match.object_like(
                    {
                        "Fn::Join": [
                            "",
                            ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/AmazonSSMManagedInstanceCore"],
                        ]
                    }
                )
            ]
        },
    )


def test_secrets_are_generated_never_literal():
    stack = bare_stack()
    AirflowSecrets(stack, "S", removal_policy=DESTROY, with_flower=True)
    t = Template.from_stack(stack)
    secrets = t.find_resources("AWS::SecretsManager::Secret")
    assert len(secrets) == 5
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert secret["Properties"]["GenerateSecretString"]["ExcludePunctuation"] is True
        assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 24


def test_mail_identities_and_send_scoped_to_them():
    stack = bare_stack()
    mail = Mail(stack, "Mail", sender_email="airflow@example.com", alert_email="ops@example.com")
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    t.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "airflow@example.com"})
    t.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "ops@example.com"})
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    assert statement["Action"] == ["ses:SendEmail", "ses:SendRawEmail"]
    assert len(statement["Resource"]) == 2 and ":identity/" in str(statement["Resource"])


def test_mail_with_one_address_creates_one_identity():
    stack = bare_stack()
    Mail(stack, "Mail", sender_email="me@example.com", alert_email="me@example.com")
    Template.from_stack(stack).resource_count_is("AWS::SES::EmailIdentity", 1)


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
        node_env={"AIRFLOW_ROLE": "worker", "EMR_PIPELINE_JSON": '{"a":1}'},
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
    assert files["files"]["/etc/airflow/node.env"]["content"] == "AIRFLOW_ROLE=worker\nEMR_PIPELINE_JSON='{\"a\":1}'\n"
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
            node_env={},
            ca_bundles={},
            fstab_line="",
            mount_point="/m",
            termination_protection=False,
        )


@pytest.mark.parametrize(
    ("uri", "prefix", "objects"),
    [
        (
            "s3://b/input/mall_customers/Mall_Customers.csv",
            "input/mall_customers/",
            "input/mall_customers/Mall_Customers.csv",
        ),
        ("s3://b/output/x/", "output/x/", "output/x/*"),
        ("s3://b/top.csv", "", "top.csv"),
    ],
)
def test_s3_location_grants_an_object_exactly_and_a_prefix_with_its_contents(uri, prefix, objects):
    from stacks.constructs.s3_access import S3GrantScope

    location = S3GrantScope.parse(uri)
    assert location.bucket == "b" and location.prefix == prefix
    assert location.objects_arn.endswith(f":s3:::b/{objects}")


@pytest.mark.parametrize("uri", ["https://b/key", "s3://b/", "s3://b"])
def test_s3_location_rejects_other_schemes_and_bucket_roots(uri):
    from stacks.constructs.s3_access import S3GrantScope

    with pytest.raises(ValueError, match="not an s3://bucket/key URI"):
        S3GrantScope.parse(uri)


def test_cluster_dns_names_the_api_server_in_a_private_zone():
    from stacks.constructs.dns import ClusterDns

    stack, vpc, _ = stack_with_vpc()
    instance = ec2.Instance(
        stack,
        "Api",
        vpc=vpc,
        instance_type=ec2.InstanceType("t3.small"),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(),
    )
    dns = ClusterDns(stack, "Dns", vpc=vpc)
    dns.point_api_server_at(instance)
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::Route53::HostedZone",
        {"Name": "airflow.internal.", "VPCs": [Match.object_like({"VPCId": stack.resolve(vpc.vpc_id)})]},
    )
    t.has_resource_properties(
        "AWS::Route53::RecordSet",
        {
            "Name": "api-server.airflow.internal.",
            "Type": "A",
            "TTL": "60",
            "ResourceRecords": [stack.resolve(instance.instance_private_ip)],
        },
    )
    assert dns.api_server_host == "api-server.airflow.internal"


@pytest.mark.parametrize("with_dataset", [True, False])
def test_repo_uploads_copy_emr_steps_and_optionally_the_dataset(with_dataset):
    from stacks.constructs.uploads import RepoUploads

    stack = bare_stack()
    buckets = Buckets(stack, "B", removal_policy=DESTROY)
    asset = s3_assets.Asset(stack, "A", path=str(REPO_ROOT / "emr_steps"))
    RepoUploads(
        stack,
        "Up",
        emr_steps_dir=REPO_ROOT / "emr_steps",
        code_bucket=buckets.code,
        code_prefix="emr_steps/",
        dataset=REPO_ROOT / "sample_data" / "Mall_Customers.csv" if with_dataset else None,
        data_bucket=buckets.data,
        dataset_prefix="input/mall_customers/",
        asset_bucket=asset.bucket,
        removal_policy=DESTROY,
    )
    t = Template.from_stack(stack)
    deployments = t.find_resources("Custom::CDKBucketDeployment")
    prefixes = sorted(d["Properties"]["DestinationBucketKeyPrefix"] for d in deployments.values())
    assert prefixes == (["emr_steps/", "input/mall_customers/"] if with_dataset else ["emr_steps/"])
    ((log_group_id, log_group),) = [
        (k, v) for k, v in t.find_resources("AWS::Logs::LogGroup").items() if "CDKBucketDeployment" in k
    ]
    assert log_group["DeletionPolicy"] == "Delete"
    for deployment in deployments.values():
        assert log_group_id in deployment["DependsOn"]


def test_mail_reuses_an_existing_identity_and_still_grants_send_on_it():
    # An identity that already exists makes AWS::SES::EmailIdentity fail with AlreadyExists.
    stack = bare_stack()
    mail = Mail(
        stack,
        "Mail",
        sender_email="airflow@corp.dev",
        alert_email="ops@corp.dev",
        existing_identities=("airflow@corp.dev",),
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    identities = [r["Properties"]["EmailIdentity"] for r in t.find_resources("AWS::SES::EmailIdentity").values()]
    assert identities == ["ops@corp.dev"]
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    resources = json.dumps(statement["Resource"])
    assert ":identity/airflow@corp.dev" in resources and len(statement["Resource"]) == 2


def test_mail_with_a_verified_domain_creates_no_identity():
    stack = bare_stack()
    mail = Mail(
        stack, "Mail", sender_email="airflow@corp.dev", alert_email="ops@corp.dev", existing_identities=("corp.dev",)
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    mail.grant_send(role)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::SES::EmailIdentity", 0)
    statement = next(iter(t.find_resources("AWS::IAM::Policy").values()))["Properties"]["PolicyDocument"]["Statement"][
        0
    ]
    resource = statement["Resource"]
    assert json.dumps(resource).endswith(':identity/corp.dev"]]}'), resource
