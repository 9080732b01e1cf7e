"""Context validation: every bad value is rejected with a message that names the parameter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacks.config import DEFAULTS, OPTIONAL, REPO_ROOT, ConfigError, load_defaults, parse_config


def test_defaults_parse_to_the_documented_dev_profile():
    config = parse_config({})
    assert config.region == "us-west-2"
    assert config.stage == "dev" and not config.is_prod
    assert config.executor == "CeleryExecutor" and config.uses_celery
    assert config.scheduler_count == 1
    assert config.allowed_ui_cidr is None
    assert config.input_uri is None and config.output_uri is None
    assert config.dataset_path == REPO_ROOT / "sample_data" / "Mall_Customers.csv"
    assert config.stack_name == "AirflowEmr-dev"


def test_every_default_comes_from_cdk_json(tmp_path):
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    assert {name: context.get(name) for name in DEFAULTS} == DEFAULTS
    assert all(DEFAULTS[name] is None for name in OPTIONAL)
    assert "allowed_ui_cidr" not in context, "the UI must not be opened to any network by default"

    without_region = {key: value for key, value in context.items() if key != "region"}
    (tmp_path / "cdk.json").write_text(json.dumps({"context": without_region}))
    with pytest.raises(ConfigError, match=r"no context value for region"):
        load_defaults(tmp_path / "cdk.json")
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {**context, "allowed_ui_cidr": "0.0.0.0/0"}}))
    with pytest.raises(ConfigError, match=r"sets allowed_ui_cidr, which must stay unset"):
        load_defaults(tmp_path / "cdk.json")


def test_command_line_strings_are_coerced():
    config = parse_config({"scheduler_count": "2", "nat_gateways": "2", "emr_core_instance_count": "3"})
    assert (config.scheduler_count, config.nat_gateways, config.emr_core_instance_count) == (2, 2, 3)


def test_output_uri_gets_a_trailing_slash_and_custom_uris_are_kept():
    config = parse_config(
        {"input_uri": "s3://cjm-oregon/champion/data/Mall_Customers.csv", "output_uri": "s3://cjm-oregon/out"}
    )
    assert config.input_uri == "s3://cjm-oregon/champion/data/Mall_Customers.csv"
    assert config.output_uri == "s3://cjm-oregon/out/"


def test_a_narrow_ui_cidr_is_accepted():
    assert parse_config({"allowed_ui_cidr": "203.0.113.0/24"}).allowed_ui_cidr == "203.0.113.0/24"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("scheduler_count", 3, "'scheduler_count': 3 is not one of 1, 2"),
        ("scheduler_count", "two", "'scheduler_count'"),
        ("executor", "Foo", "'executor': 'Foo' is not one of CeleryExecutor, LocalExecutor"),
        ("stage", "qa", "'stage': 'qa' is not one of dev, prod"),
        ("allowed_ui_cidr", "0.0.0.0/0", "'allowed_ui_cidr'"),
        ("allowed_ui_cidr", "::/0", "'allowed_ui_cidr'"),
        ("allowed_ui_cidr", "10.0.0.300/24", "is not a CIDR block"),
        ("allowed_ui_cidr", "10.0.0.1/24", "is not a CIDR block"),
        ("allowed_ui_cidr", "0.0.0.0/1", "whole internet"),
        ("alert_email", "ops-at-example.com", "'alert_email': 'ops-at-example.com' is not an e-mail address"),
        ("sender_email", "a@b", "'sender_email'"),
        ("input_uri", "https://bucket/key.csv", "'input_uri': 'https://bucket/key.csv' is not an s3://bucket/key URI"),
        ("input_uri", "s3://bucket/prefix/", "must name the CSV object"),
        ("output_uri", "/tmp/out", "'output_uri'"),
        ("output_uri", "s3://bucket//", "'output_uri': 's3://bucket//' is a bucket root"),
        ("input_uri", "s3://bucket/Mall_Customers.csv", "is at the bucket root; put the CSV under a prefix"),
        ("region", "mars-1", "'region'"),
        ("nat_gateways", 0, "'nat_gateways': 0 is outside 1..2"),
        ("api_server_instance_type", "large", "'api_server_instance_type'"),
        ("cache_node_type", "t4g.micro", "'cache_node_type'"),
        ("emr_release_label", "7.10.0", "'emr_release_label'"),
        ("emr_idle_timeout_seconds", 10, "'emr_idle_timeout_seconds'"),
        ("hive_database", "Mall-DB", "'hive_database'"),
        ("dataset_path", "no/such/file.csv", "does not exist"),
        ("emr_core_instance_count", True, "boolean"),
    ],
)
def test_bad_values_are_rejected_by_name(key, value, message):
    with pytest.raises(ConfigError) as error:
        parse_config({key: value})
    assert message in str(error.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(ConfigError) as error:
        parse_config({"stage": "qa", "executor": "Foo", "scheduler_count": 3})
    text = str(error.value)
    assert all(name in text for name in ("'stage'", "'executor'", "'scheduler_count'"))


def test_a_dataset_that_is_no_csv_file_is_rejected_naming_the_path(tmp_path):
    notes = tmp_path / "customers.txt"
    notes.write_text("CustomerID\n1\n")
    for path, problem in (
        (tmp_path / "missing.csv", "does not exist"),
        (tmp_path, "is not a file"),
        (notes, "is not a .csv file"),
    ):
        with pytest.raises(ConfigError) as error:
            parse_config({"dataset_path": str(path)})
        assert f"context parameter 'dataset_path': {path} {problem}" in str(error.value)
    upper_case = tmp_path / "CUSTOMERS_2026.CSV"
    upper_case.write_text("CustomerID\n1\n")
    assert parse_config({"dataset_path": str(upper_case)}).dataset_path == upper_case


def test_local_executor_runs_one_scheduler():
    with pytest.raises(ConfigError, match="LocalExecutor"):
        parse_config({"executor": "LocalExecutor", "scheduler_count": 2})


def test_app_exits_with_a_clear_error_and_writes_nothing(tmp_path):
    outdir = tmp_path / "cdk.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"CDK_OUTDIR": str(outdir), "CDK_CONTEXT_JSON": json.dumps({"stage": "qa", "allowed_ui_cidr": "0.0.0.0/0"})}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2
    assert "context parameter 'stage'" in result.stderr
    assert "context parameter 'allowed_ui_cidr'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not outdir.exists()


def test_deploying_refuses_placeholder_addresses_and_names_the_options():
    with pytest.raises(ConfigError) as error:
        parse_config({"deploying": "true"})
    assert "-c sender_email=" in str(error.value) and "-c alert_email=" in str(error.value)
    for placeholder in ("me@example.org", "me@mail.example.net", "me@host.test"):
        with pytest.raises(ConfigError, match="'alert_email'"):
            parse_config({"deploying": True, "sender_email": "airflow@corp.dev", "alert_email": placeholder})
    config = parse_config({"deploying": "true", "sender_email": "airflow@corp.dev", "alert_email": "ops@corp.dev"})
    assert config.deploying
    # Offline synthesis (tests, `make synth`) keeps the placeholders.
    assert parse_config({}).sender_email == "airflow@example.com"


def test_existing_ses_identities_must_cover_one_of_the_addresses():
    config = parse_config({"existing_ses_identities": "airflow@example.com, example.com"})
    assert config.existing_ses_identities == ("airflow@example.com", "example.com")
    with pytest.raises(ConfigError, match="'existing_ses_identities': 'other.org' covers neither"):
        parse_config({"existing_ses_identities": "other.org"})
    with pytest.raises(ConfigError, match="neither an e-mail address nor a domain"):
        parse_config({"existing_ses_identities": "not an identity"})
