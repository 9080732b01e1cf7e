"""Seeded resources, connection details and the S3/SES helpers of LocalAws (no Spark run)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.fernet import Fernet

from airflow_assets.dags.emr_pipeline.variable import EmrPipelineVariable
from rehearsal.aws import LocalAws
from stacks.config import REPO_ROOT

from .emulator_support import DATASET, FIXTURE_STEPS


def contract_secret_parameters() -> set[str]:
    text = (REPO_ROOT / "docs" / "contracts.md").read_text()
    section = text.split("## 3.", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+_SECRET_ID|DB_SECRET_ID)` \|", section, re.MULTILINE))


def test_pipeline_config_is_a_valid_variable(local_aws):
    config = local_aws.pipeline_config
    # from_dict names any missing, unknown or malformed key.
    assert EmrPipelineVariable.from_dict(config).to_dict() == config
    assert config["region"] == local_aws.region


def test_pipeline_config_points_at_seeded_resources(local_aws):
    config = local_aws.pipeline_config
    s3 = local_aws.client("s3")
    for uri in (config["log_uri"], config["steps_uri"], config["input_uri"], config["output_uri"]):
        s3.head_bucket(Bucket=uri.removeprefix("s3://").split("/", 1)[0])
    assert config["steps_uri"].endswith("/") and config["log_uri"].endswith("/")

    iam = local_aws.client("iam")
    service_role = iam.get_role(RoleName=config["service_role"])["Role"]
    assert "elasticmapreduce.amazonaws.com" in json.dumps(service_role["AssumeRolePolicyDocument"])
    profile = iam.get_instance_profile(InstanceProfileName=config["job_flow_role"])["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]]

    ec2 = local_aws.client("ec2")
    subnet = ec2.describe_subnets(SubnetIds=[config["subnet_id"]])["Subnets"][0]
    groups = ec2.describe_security_groups(
        GroupIds=[config["emr_managed_primary_sg"], config["emr_managed_core_sg"], config["service_access_sg"]]
    )["SecurityGroups"]
    assert {group["VpcId"] for group in groups} == {subnet["VpcId"]}
    assert len({group["GroupId"] for group in groups}) == 3


def test_dataset_and_steps_are_uploaded_byte_identical(local_aws, tmp_path):
    config = local_aws.pipeline_config
    local_aws.download(config["input_uri"], tmp_path / "input.csv")
    assert (tmp_path / "input.csv").read_bytes() == DATASET.read_bytes()
    # The input prefix holds only input CSVs (it is the Hive external table's LOCATION).
    input_prefix = config["input_uri"].rsplit("/", 1)[0] + "/"
    assert local_aws.list_keys(input_prefix) == [config["input_uri"].split("/", 3)[3]]
    steps_key_prefix = config["steps_uri"].split("/", 3)[3]
    expected = sorted(steps_key_prefix + path.name for path in FIXTURE_STEPS.iterdir() if path.is_file())
    assert local_aws.list_keys(config["steps_uri"]) == expected
    local_aws.download(config["steps_uri"] + "write_sorted.py", tmp_path / "write_sorted.py")
    assert (tmp_path / "write_sorted.py").read_bytes() == (FIXTURE_STEPS / "write_sorted.py").read_bytes()


def test_secrets_match_the_contract_and_are_usable(local_aws):
    ids = local_aws.secret_ids
    assert set(ids) == contract_secret_parameters()
    values = {parameter: local_aws.secret_value(secret_id) for parameter, secret_id in ids.items()}
    seed = values["FERNET_KEY_SECRET_ID"]
    assert len(seed) == 64 and seed.isalnum() and seed.isascii()
    fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()))  # the §3 derivation
    assert fernet.decrypt(fernet.encrypt(b"rehearsal")) == b"rehearsal"
    database = json.loads(values["DB_SECRET_ID"])
    assert database["username"] == "airflow_admin" and len(database["password"]) == 30
    assert not set(database["password"]) & set("\"@/\\'%:?#&=+ "), "RDS-excluded characters"
    redis = values["REDIS_AUTH_SECRET_ID"]
    assert 16 <= len(redis) <= 128 and not set('@"/ ') & set(redis)
    plain = [values[p] for p in ids if p != "DB_SECRET_ID"]
    assert len(set(plain)) == len(plain), "every generated secret is distinct"


def test_airflow_connection_uri_parses_to_the_emulator(local_aws):
    from airflow.models.connection import Connection

    connection = Connection(conn_id="aws_default", uri=local_aws.airflow_connection_uri)
    assert connection.conn_type == "aws"
    assert connection.login and connection.password
    assert connection.extra_dejson == {"region_name": local_aws.region, "endpoint_url": local_aws.endpoint_url}


def test_airflow_hooks_reach_the_emulator_and_ses_mails_are_parsed(local_aws, monkeypatch):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.amazon.aws.hooks.ses import SesHook

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", local_aws.airflow_connection_uri)
    config = local_aws.pipeline_config
    input_bucket, input_key = config["input_uri"].removeprefix("s3://").split("/", 1)
    assert S3Hook(aws_conn_id="aws_default").check_for_key(input_key, bucket_name=input_bucket)

    before = len(local_aws.sent_mails())
    SesHook(aws_conn_id="aws_default").send_email(
        mail_from=config["sender_email"],
        to=config["alert_email"],
        subject="dag_1 succeeded",
        html_content="<p>all <b>good</b></p>",
    )
    mails = local_aws.sent_mails()
    assert len(mails) == before + 1
    assert {**mails[-1], "body": mails[-1]["body"].strip()} == {
        "source": config["sender_email"],
        "destinations": [config["alert_email"]],
        "subject": "dag_1 succeeded",
        "body": "<p>all <b>good</b></p>",
    }


def test_ses_rejects_an_unverified_sender(local_aws):
    ses = local_aws.client("ses")
    assert local_aws.pipeline_config["sender_email"] in ses.list_identities()["Identities"]
    with pytest.raises(ses.exceptions.MessageRejected):
        ses.send_email(
            Source="nobody@example.org",
            Destination={"ToAddresses": ["ops@example.com"]},
            Message={"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "y"}}},
        )


def test_s3_helpers_round_trip_and_read_parquet_in_part_order(local_aws, tmp_path):
    prefix = "s3://airflow-emr-data/helpers/table/"
    for part, values in (("part-00001.parquet", [3, 4]), ("part-00000.parquet", [1, 2])):
        buffer = io.BytesIO()
        pq.write_table(pa.table({"n": values}), buffer)
        local_aws.upload_bytes(buffer.getvalue(), prefix + part)
    local_aws.upload_bytes(b"", prefix + "_SUCCESS")
    source = tmp_path / "notes.txt"
    source.write_text("hello")
    local_aws.upload(source, "s3://airflow-emr-data/helpers/notes.txt")
    local_aws.download("s3://airflow-emr-data/helpers/notes.txt", tmp_path / "copy" / "notes.txt")

    assert (tmp_path / "copy" / "notes.txt").read_text() == "hello"
    assert local_aws.list_keys(prefix) == [
        "helpers/table/_SUCCESS",
        "helpers/table/part-00000.parquet",
        "helpers/table/part-00001.parquet",
    ]
    assert local_aws.read_parquet(prefix).column("n").to_pylist() == [1, 2, 3, 4]
    with pytest.raises(FileNotFoundError, match="no Parquet parts"):
        local_aws.read_parquet("s3://airflow-emr-data/helpers/nothing-here/")


def test_a_second_emulator_in_the_same_process_is_refused(local_aws, tmp_path):
    with pytest.raises(RuntimeError, match="already running"):
        LocalAws(tmp_path, dataset=DATASET, emr_steps_dir=FIXTURE_STEPS).start()
    assert local_aws.list_keys(local_aws.pipeline_config["steps_uri"]), "the running emulator is untouched"


def test_missing_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset not found: .*missing.csv"):
        LocalAws(tmp_path, dataset=tmp_path / "missing.csv", emr_steps_dir=FIXTURE_STEPS).start()
    with pytest.raises(FileNotFoundError, match="EMR steps directory not found"):
        LocalAws(tmp_path, dataset=DATASET, emr_steps_dir=tmp_path / "nope").start()


def test_a_busy_port_is_a_clear_error_not_a_hang(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot serve the AWS emulator on 127.0.0.1:{port}"):
            LocalAws(tmp_path, dataset=DATASET, emr_steps_dir=FIXTURE_STEPS, port=port).start()


def test_sent_mails_also_lists_simple_send_email_messages(local_aws):
    config = local_aws.pipeline_config
    local_aws.client("ses").send_email(
        Source=config["sender_email"],
        Destination={"ToAddresses": [config["alert_email"]], "CcAddresses": ["cc@example.com"]},
        Message={"Subject": {"Data": "plain"}, "Body": {"Text": {"Data": "text body"}}},
    )
    assert local_aws.sent_mails()[-1] == {
        "source": config["sender_email"],
        "destinations": [config["alert_email"], "cc@example.com"],
        "subject": "plain",
        "body": "text body",
    }
