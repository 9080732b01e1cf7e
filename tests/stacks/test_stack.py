"""The wired stack: the seams of docs/contracts.md, the variants, the outputs."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Template

from airflow_assets.dags.emr_pipeline.variable import OPTIONAL_KEYS, REQUIRED_KEYS, EmrPipelineVariable
from stacks import s3_layout as layout
from stacks.config import REPO_ROOT

from .infra_support import VARIANTS, node_env, parse_env

CONTRACTS = (REPO_ROOT / "docs" / "contracts.md").read_text()


def contract_keys(section: str, *, optional: bool) -> set[str]:
    """Backticked keys in the first column of a contracts.md section's tables: the mandatory ones,
    or the optional ones (rows saying "optional:", or the table after "Optional keys")."""
    body = CONTRACTS.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    mandatory_part, _, optional_part = body.partition("Optional keys")
    keys = set()
    for part, part_is_optional in ((mandatory_part, False), (optional_part, True)):
        for line in part.splitlines():
            if line.startswith("| `"):
                row_is_optional = part_is_optional or "optional:" in line
                if row_is_optional == optional:
                    keys |= set(re.findall(r"`([A-Za-z_]+)`", line.split("|")[1]))
    return keys


def test_contracts_section_1_documents_exactly_the_variables_keys():
    """The table explains the keys; variable.py defines them."""
    assert contract_keys("1.", optional=False) == set(REQUIRED_KEYS)
    assert contract_keys("1.", optional=True) == set(OPTIONAL_KEYS)


def emr_pipeline(env: dict[str, str]) -> dict:
    # Tokens are rendered as <Ref> placeholders, which keeps the JSON parseable.
    return json.loads(env["EMR_PIPELINE_JSON"])


@pytest.mark.parametrize("role", ["ApiServer", "Scheduler", "Worker"])
def test_node_env_keys_follow_contract_section_4(dev, role):
    env = parse_env(node_env(dev.template, role + "Instance"))
    required = contract_keys("4.", optional=False) - {"AWS_ENDPOINT_URL"}
    assert required <= set(env), required - set(env)
    assert set(env) <= required | contract_keys("4.", optional=True), set(env) - required
    assert env["AIRFLOW_USER"] == "airflow" and env["AIRFLOW_REQUIREMENTS"] == "/opt/airflow/requirements-airflow.txt"
    assert env["AIRFLOW_ROLE"] == {"ApiServer": "api-server", "Scheduler": "scheduler", "Worker": "worker"}[role]
    assert env["DB_PORT"].startswith("<MetadataDb") and env["REDIS_TLS"] == "true"
    assert env["DAGS_FOLDER"] == "/mnt/efs/airflow/dags" and env["DAGS_SOURCE_DIR"] == "/opt/airflow/assets/dags"
    assert re.fullmatch(rf"s3://<BucketsLogs\w+>/{layout.AIRFLOW_LOG_PREFIX}", env["REMOTE_LOG_URI"])
    for key in (
        "DB_SECRET_ID",
        "REDIS_AUTH_SECRET_ID",
        "FERNET_KEY_SECRET_ID",
        "JWT_SECRET_SECRET_ID",
        "API_SECRET_KEY_SECRET_ID",
        "ADMIN_PASSWORD_SECRET_ID",
    ):
        assert re.fullmatch(r"<\w+>", env[key]), f"{key} must be a secret reference, got {env[key]}"


@pytest.mark.parametrize("variant", ["dev", "prod", "local_executor"])
def test_every_node_verifies_the_database_certificate_with_the_rds_ca_bundle(assemblies, variant):
    assembly = assemblies[variant]
    bundle = "/etc/pki/rds/global-bundle.pem"
    # cfn-init downloads AWS's documented global RDS bundle in the same config that writes node.env.
    Template.from_json(assembly.template).all_resources(
        "AWS::EC2::Instance",
        {
            "Metadata": {
                "AWS::CloudFormation::Init": {
                    "files": {
                        "files": {
                            bundle: {
                                "source": "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
                                "mode": "000644",
                                "owner": "root",
                                "group": "root",
                            }
                        }
                    }
                }
            }
        },
    )
    for logical_id in assembly.resources("AWS::EC2::Instance"):
        env = parse_env(node_env(assembly.template, logical_id))
        assert (env["DB_TLS"], env["DB_CA_BUNDLE"]) == ("true", bundle), logical_id


def test_emr_pipeline_has_exactly_the_contract_keys_from_real_resources(dev):
    pipeline = emr_pipeline(parse_env(node_env(dev.template, "SchedulerInstance")))
    # from_dict names any missing, unknown or malformed key.
    assert EmrPipelineVariable.from_dict(pipeline).to_dict() == pipeline
    assert pipeline["service_role"].startswith("<EmrRolesServiceRole")
    assert pipeline["job_flow_role"].startswith("<EmrRolesInstanceProfile")
    assert pipeline["subnet_id"].startswith("<NetworkVpcprivateSubnet1")
    assert pipeline["emr_managed_primary_sg"].startswith("<EmrSecurityGroupsPrimary") and pipeline[
        "emr_managed_primary_sg"
    ].endswith(".GroupId>")
    assert pipeline["service_access_sg"].startswith("<EmrSecurityGroupsServiceAccess")
    assert re.fullmatch(rf"s3://<BucketsData\w+>/{re.escape(layout.INPUT_KEY)}", pipeline["input_uri"])
    assert re.fullmatch(rf"s3://<BucketsData\w+>/{layout.OUTPUT_PREFIX}", pipeline["output_uri"])
    assert re.fullmatch(rf"s3://<BucketsLogs\w+>/{layout.EMR_LOG_PREFIX}", pipeline["log_uri"])
    assert re.fullmatch(rf"s3://<BucketsCode\w+>/{layout.EMR_STEPS_PREFIX}", pipeline["steps_uri"])
    assert pipeline["region"] == "us-west-2" and pipeline["release_label"] == "emr-7.10.0"
    assert pipeline["core_instance_count"] == 0 and pipeline["idle_timeout_seconds"] == 3600
    assert (pipeline["sender_email"], pipeline["alert_email"]) == ("airflow@example.com", "ops@example.com")


def test_scheduler_boots_first_and_nodes_find_the_api_server_by_name(dev):
    api = parse_env(node_env(dev.template, "ApiServerInstance"))
    scheduler = parse_env(node_env(dev.template, "SchedulerInstance"))
    worker = parse_env(node_env(dev.template, "WorkerInstance"))
    assert api["API_SERVER_HOST"] == "127.0.0.1"
    assert scheduler["API_SERVER_HOST"] == worker["API_SERVER_HOST"] == "api-server.airflow.internal"
    assert api["SCHEDULER_COUNT"] == scheduler["SCHEDULER_COUNT"] == "1"
    instances = dev.resources("AWS::EC2::Instance")
    scheduler_id = next(k for k in instances if k.startswith("Scheduler"))
    for name in ("ApiServer", "Worker"):
        logical_id = next(k for k in instances if k.startswith(name))
        assert scheduler_id in instances[logical_id]["DependsOn"], f"{name} must wait for the migrating scheduler"
    assert "ApiServer" not in json.dumps(instances[scheduler_id]), "the scheduler must not wait for the api-server"
    (record,) = dev.resources("AWS::Route53::RecordSet").values()
    assert record["Properties"]["Name"] == "api-server.airflow.internal." and record["Properties"]["Type"] == "A"
    assert record["Properties"]["ResourceRecords"] == [
        {"Fn::GetAtt": [next(k for k in instances if k.startswith("ApiServer")), "PrivateIp"]}
    ]


def test_prod_runs_two_schedulers_multi_az_and_retains_data(assemblies):
    prod = assemblies["prod"]
    api = parse_env(node_env(prod.template, "ApiServerInstance"))
    assert api["SCHEDULER_COUNT"] == "2" and api["STAGE"] == "prod"
    (db,) = prod.resources("AWS::RDS::DBInstance").values()
    assert db["Properties"]["MultiAZ"] is True and db["Properties"]["DeletionProtection"] is True
    assert db["DeletionPolicy"] == "Retain"
    for bucket in prod.resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain" and bucket["Properties"]["VersioningConfiguration"] == {
            "Status": "Enabled"
        }
    assert not prod.resources("Custom::S3AutoDeleteObjects")
    (cache,) = prod.resources("AWS::ElastiCache::ReplicationGroup").values()
    assert cache["Properties"]["MultiAZEnabled"] is True
    assert len(prod.resources("AWS::EC2::NatGateway")) == 2
    for instance in prod.resources("AWS::EC2::Instance").values():
        assert instance["Properties"]["DisableApiTermination"] is True
    subnet = {
        k.split("Instance")[0]: v["Properties"]["SubnetId"]["Ref"]
        for k, v in prod.resources("AWS::EC2::Instance").items()
    }
    assert subnet["Scheduler"].startswith("NetworkVpcprivateSubnet2") and subnet["ApiServer"].startswith(
        "NetworkVpcprivateSubnet1"
    )


def test_dev_keeps_every_node_in_one_az(dev):
    subnets = {v["Properties"]["SubnetId"]["Ref"] for v in dev.resources("AWS::EC2::Instance").values()}
    assert len(subnets) == 1 and next(iter(subnets)).startswith("NetworkVpcprivateSubnet1")


def test_allowed_ui_cidr_attaches_a_ui_group_to_the_api_server_only(assemblies):
    prod = assemblies["prod"]
    ui_groups = [
        k
        for k, v in prod.resources("AWS::EC2::SecurityGroup").items()
        if v["Properties"]["GroupDescription"] == "Airflow UI from allowed_ui_cidr"
    ]
    assert len(ui_groups) == 1
    attached = {k: str(v["Properties"]["SecurityGroupIds"]) for k, v in prod.resources("AWS::EC2::Instance").items()}
    assert [k for k, groups in attached.items() if ui_groups[0] in groups] == [
        next(k for k in attached if k.startswith("ApiServer"))
    ]
    dev_groups = [v["Properties"]["GroupDescription"] for v in prod.resources("AWS::EC2::SecurityGroup").values()]
    assert dev_groups.count("Airflow UI from allowed_ui_cidr") == 1


def test_dev_is_destroyable(dev):
    for cfn_type in (
        "AWS::S3::Bucket",
        "AWS::RDS::DBInstance",
        "AWS::EFS::FileSystem",
        "AWS::SecretsManager::Secret",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::Logs::LogGroup",
    ):
        for logical_id, resource in dev.resources(cfn_type).items():
            assert resource.get("DeletionPolicy", "Delete") == "Delete", logical_id
    assert len(dev.resources("Custom::S3AutoDeleteObjects")) == 4
    (db,) = dev.resources("AWS::RDS::DBInstance").values()
    assert db["Properties"]["DeletionProtection"] is False
    assert "EnableCloudwatchLogsExports" not in db["Properties"], "RDS export log groups would outlive the stack"


def test_dev_handlers_log_into_groups_that_are_deleted_after_them(dev):
    # Deleting these custom resources invokes their Lambda; its log group must exist until then
    # (else Lambda creates one outside CloudFormation that outlives `cdk destroy`).
    groups = {k: v for k, v in dev.resources("AWS::Logs::LogGroup").items() if "LogGroupName" in v["Properties"]}
    handler_of = {json.dumps(v["Properties"]["LogGroupName"]): k for k, v in groups.items()}
    for cfn_type in ("Custom::S3AutoDeleteObjects", "Custom::CDKBucketDeployment", "Custom::VpcRestrictDefaultSG"):
        assert dev.resources(cfn_type), cfn_type
        for logical_id, resource in dev.resources(cfn_type).items():
            handler = resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
            name = json.dumps({"Fn::Join": ["", ["/aws/lambda/", {"Ref": handler}]]})
            assert name in handler_of, f"{handler} has no log group of its own"
            assert handler_of[name] in resource["DependsOn"], (
                f"{logical_id} must be deleted before its handler's log group"
            )
            assert groups[handler_of[name]]["DeletionPolicy"] == "Delete"


def test_local_executor_has_no_broker_no_worker_and_custom_uris(assemblies):
    local = assemblies["local_executor"]
    assert not local.resources("AWS::ElastiCache::ReplicationGroup")
    instances = local.resources("AWS::EC2::Instance")
    assert sorted(k.split("Instance")[0] for k in instances) == ["ApiServer", "Scheduler"]
    env = parse_env(node_env(local.template, "SchedulerInstance"))
    assert env["EXECUTOR"] == "LocalExecutor" and "REDIS_HOST" not in env
    pipeline = emr_pipeline(env)
    assert pipeline["input_uri"] == "s3://cjm-oregon/champion/data/Mall_Customers.csv"
    assert pipeline["output_uri"] == "s3://cjm-oregon/champion/output/"
    # The sample is uploaded only when the pipeline reads it.
    assert len(local.resources("Custom::CDKBucketDeployment")) == 1
    policies = json.dumps(local.resources("AWS::IAM::Policy"))
    # The custom input is granted as exactly that object, not its folder.
    assert 'arn:", {"Ref": "AWS::Partition"}, ":s3:::cjm-oregon/champion/data/Mall_Customers.csv"' in policies
    assert ":s3:::cjm-oregon/champion/data/*" not in policies
    assert ":s3:::cjm-oregon/champion/output/*" in policies


def test_sample_dataset_and_emr_steps_are_uploaded(dev):
    deployments = [d["Properties"] for d in dev.resources("Custom::CDKBucketDeployment").values()]
    prefixes = sorted(d["DestinationBucketKeyPrefix"] for d in deployments)
    assert prefixes == [layout.EMR_STEPS_PREFIX, layout.INPUT_PREFIX]
    dataset_asset = next(d for d in deployments if d["DestinationBucketKeyPrefix"] == layout.INPUT_PREFIX)
    staged = dev.outdir / f"asset.{dataset_asset['SourceObjectKeys'][0].removesuffix('.zip')}"
    assert sorted(p.name for p in staged.iterdir()) == [layout.INPUT_FILE_NAME]
    assert (staged / layout.INPUT_FILE_NAME).read_bytes() == (
        REPO_ROOT / "sample_data" / "Mall_Customers.csv"
    ).read_bytes()


def test_sample_dataset_is_the_shared_dataset():
    from rehearsal.dataset import SHARED_DATASET as shared

    if not shared.exists():
        pytest.skip(f"{shared} is not on this machine")
    assert (REPO_ROOT / "sample_data" / "Mall_Customers.csv").read_bytes() == shared.read_bytes()


def test_outputs_cover_ui_flower_buckets_uris_and_db(dev):
    outputs = dev.template["Outputs"]
    assert {
        "UiPortForwardCommand",
        "FlowerPortForwardCommand",
        "AdminPasswordCommand",
        "DataBucketName",
        "LogsBucketName",
        "CodeBucketName",
        "InputUri",
        "OutputUri",
        "DbEndpoint",
        "BrokerEndpoint",
        "EmrPipelineVariable",
    } <= set(outputs)
    ui = json.dumps(outputs["UiPortForwardCommand"]["Value"])
    assert (
        "aws ssm start-session" in ui
        and "AWS-StartPortForwardingSession" in ui
        and "ApiServerInstance" in ui
        and "8080" in ui
    )
    flower = json.dumps(outputs["FlowerPortForwardCommand"]["Value"])
    assert "WorkerInstance" in flower and "5555" in flower


def test_nodes_boot_after_mount_targets_and_their_policy(dev):
    for logical_id, instance in dev.resources("AWS::EC2::Instance").items():
        depends = instance["DependsOn"]
        assert any(d.startswith("SharedFsFileSystemEfsMountTarget") for d in depends)
        role = "WorkerRolePolicy" if logical_id.startswith("Worker") else "NodeRolePolicy"
        assert any(d.startswith(role) for d in depends), logical_id


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_database_pins_the_major_line_and_lets_rds_choose_the_minor(assemblies, variant):
    # RDS retires minor versions; a template naming one fails its create once the region stops offering
    # it. A major-only EngineVersion gets the region's default minor, and it must be the parameter group's line.
    template = assemblies[variant].template
    (db,) = assemblies[variant].resources("AWS::RDS::DBInstance").values()
    version = db["Properties"]["EngineVersion"]
    assert re.fullmatch(r"\d+\.\d+", version), f"EngineVersion {version!r} pins a minor version"
    assert db["Properties"]["AutoMinorVersionUpgrade"] is True
    group = template["Resources"][db["Properties"]["DBParameterGroupName"]["Ref"]]
    assert group["Properties"]["Family"] == f"mysql{version}"
