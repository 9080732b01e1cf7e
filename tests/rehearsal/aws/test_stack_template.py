"""Binding the template's references to the seeded resources (rehearsal/aws/stack_template.py)."""

from __future__ import annotations

import pytest

from rehearsal.aws.iam_policy import Request, TemplateIam, evaluate
from rehearsal.aws.stack_template import NODE_ENV_PATH, SynthesizedStack, bind_to_emulator

ACCOUNT = "123456789012"
SECRET_ARN = f"arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:airflow-emr/fernet-key-AbCdEf"


def template() -> dict:
    """The shape aws-cdk-lib emits: node.env joins references; the profile is named by its role's Ref."""
    pipeline = {
        "Fn::Join": [
            "",
            [
                '{"job_flow_role":"',
                {"Ref": "Profile"},
                '","log_uri":"s3://',
                {"Ref": "Logs"},
                '/emr/","cluster_tags":{"airflow-emr-stack":"Stack-dev"}}',
            ],
        ]
    }
    node_env = {
        "Fn::Join": [
            "",
            [
                "FERNET_KEY_SECRET_ID=",
                {"Ref": "Fernet"},
                "\nEMR_PIPELINE_JSON='",
                pipeline,
                "'\n",
            ],
        ]
    }
    return {
        "Resources": {
            "Logs": {"Type": "AWS::S3::Bucket"},
            "Fernet": {"Type": "AWS::SecretsManager::Secret"},
            "InstanceRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
            "Profile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": {"Ref": "InstanceRole"}, "Roles": [{"Ref": "InstanceRole"}]},
            },
            "NodeRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {},
                    "Policies": [
                        {
                            "PolicyName": "p",
                            "PolicyDocument": {
                                "Version": "2012-10-17",
                                "Statement": [
                                    {
                                        "Effect": "Allow",
                                        "Action": "secretsmanager:GetSecretValue",
                                        "Resource": {"Ref": "Fernet"},
                                    },
                                    {
                                        "Effect": "Allow",
                                        "Action": "s3:PutObject",
                                        "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Logs", "Arn"]}, "/airflow/*"]]},
                                    },
                                    {
                                        "Effect": "Allow",
                                        "Action": "iam:PassRole",
                                        "Resource": {"Fn::GetAtt": ["InstanceRole", "Arn"]},
                                    },
                                ],
                            },
                        },
                    ],
                },
            },
            "Node": {
                "Type": "AWS::EC2::Instance",
                "Metadata": {"AWS::CloudFormation::Init": {"files": {"files": {NODE_ENV_PATH: {"content": node_env}}}}},
            },
        }
    }


def seeded(**changes) -> dict:
    return {
        "job_flow_role": "AirflowEmr-Ec2Role",
        "log_uri": "s3://airflow-emr-logs/emr/",
        "cluster_tags": {"airflow-emr-stack": "AirflowEmr-rehearsal"},
        "poll_interval_seconds": 1,
        **changes,
    }


def bind(pipeline: dict):
    stack = SynthesizedStack(template(), "Stack-dev", 0.0)
    return bind_to_emulator(
        stack,
        region="us-west-2",
        account=ACCOUNT,
        pipeline_config=pipeline,
        secret_ids={"FERNET_KEY_SECRET_ID": SECRET_ARN},
    )


def test_references_become_the_seeded_names_and_the_templates_literals_win():
    values, pipeline = bind(seeded())
    assert pipeline == {**seeded(), "cluster_tags": {"airflow-emr-stack": "Stack-dev"}}
    node = TemplateIam(template(), values).principal("NodeRole")
    assert evaluate(node, Request("secretsmanager:GetSecretValue", SECRET_ARN))
    assert evaluate(node, Request("s3:PutObject", "arn:aws:s3:::airflow-emr-logs/airflow/x.log"))
    # The profile's name is its role's Ref: binding the profile binds the role it holds.
    assert evaluate(node, Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/AirflowEmr-Ec2Role"))


def test_a_seeded_value_the_template_cannot_produce_is_an_error():
    with pytest.raises(
        ValueError,
        match=r"seeded emr_pipeline.log_uri 's3://airflow-emr-logs/logs/' does not fit the template's 's3://<Logs>/emr/'",
    ):
        bind(seeded(log_uri="s3://airflow-emr-logs/logs/"))


def test_the_synthesis_cache_key_changes_with_any_input_of_the_synthesis(tmp_path, monkeypatch):
    from rehearsal.aws import stack_template

    for name in ("app.py", "cdk.json", "stacks/airflow_stack.py", "airflow_assets/bootstrap/node.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    monkeypatch.setattr(stack_template, "REPO_ROOT", tmp_path)
    keys = {stack_template.synth_cache_key()}
    for name in ("cdk.json", "stacks/airflow_stack.py", "airflow_assets/bootstrap/node.py"):
        (tmp_path / name).write_text(name + " changed")
        keys.add(stack_template.synth_cache_key())
    (tmp_path / "emr_steps").mkdir()
    (tmp_path / "emr_steps" / "new_job.py").write_text("")
    keys.add(stack_template.synth_cache_key())
    assert len(keys) == 5
