"""The IAM evaluator (rehearsal/aws/iam_policy.py) against AWS's documented evaluation rules."""

from __future__ import annotations

import pytest

from rehearsal.aws.iam_policy import PolicyDocument, Principal, Request, evaluate, load_managed_policy, may_assume

ACCOUNT = "123456789012"
CLUSTER = f"arn:aws:elasticmapreduce:us-west-2:{ACCOUNT}:cluster/j-2AXXXXXXGAPLF"
EMR_TAG = "for-use-with-amazon-emr-managed-policies"


def principal(*statements: dict, trust: dict | None = None) -> Principal:
    return Principal(
        "TestRole", (PolicyDocument("inline", {"Version": "2012-10-17", "Statement": list(statements)}),), trust
    )


def allow(action, resource, condition=None, **extra) -> dict:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource, **extra}
    if condition:
        statement["Condition"] = condition
    return statement


def test_run_job_flow_supports_no_resource_type_so_a_cluster_arn_grant_never_matches():
    role = principal(allow("elasticmapreduce:RunJobFlow", f"arn:aws:elasticmapreduce:us-west-2:{ACCOUNT}:cluster/*"))
    decision = evaluate(role, Request("elasticmapreduce:RunJobFlow", "*"))
    assert not decision and "implicit deny" in decision.reason
    assert evaluate(principal(allow("elasticmapreduce:RunJobFlow", "*")), Request("elasticmapreduce:RunJobFlow", "*"))


def test_requests_aws_cannot_make_are_rejected():
    role = principal(allow("elasticmapreduce:*", "*"))
    with pytest.raises(ValueError, match="authorised against '\\*' only"):
        evaluate(role, Request("elasticmapreduce:RunJobFlow", CLUSTER))
    with pytest.raises(ValueError, match="supplies no aws:ResourceTag/team"):
        evaluate(role, Request("elasticmapreduce:RunJobFlow", "*", {"aws:ResourceTag/team": "x"}))
    with pytest.raises(ValueError, match="not an ARN of a resource type"):
        evaluate(role, Request("elasticmapreduce:AddJobFlowSteps", "arn:aws:s3:::bucket/key"))
    with pytest.raises(ValueError, match="unknown IAM action"):
        evaluate(role, Request("elasticmapreduce:LaunchRocket", "*"))


def test_aws_full_access_v2_runs_job_flows_only_with_the_managed_policy_tag():
    role = Principal("FullAccess", (load_managed_policy("arn:aws:iam::aws:policy/AmazonEMRFullAccessPolicy_v2"),))
    tagged = {f"aws:RequestTag/{EMR_TAG}": "true", "aws:TagKeys": [EMR_TAG]}
    assert evaluate(role, Request("elasticmapreduce:RunJobFlow", "*", tagged))
    assert not evaluate(role, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": []}))


def test_resource_tag_conditions_select_clusters():
    role = principal(
        allow(
            "elasticmapreduce:TerminateJobFlows",
            "arn:aws:elasticmapreduce:*:*:cluster/*",
            {"StringEquals": {"aws:ResourceTag/owner": "us"}},
        )
    )
    assert evaluate(role, Request("elasticmapreduce:TerminateJobFlows", CLUSTER, {"aws:ResourceTag/owner": "us"}))
    assert not evaluate(role, Request("elasticmapreduce:TerminateJobFlows", CLUSTER, {"aws:ResourceTag/owner": "them"}))
    assert not evaluate(role, Request("elasticmapreduce:TerminateJobFlows", CLUSTER))


def test_explicit_deny_wins():
    role = principal(
        allow("s3:GetObject", "arn:aws:s3:::b/*"),
        {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/secret/*"},
    )
    assert evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/public/x"))
    decision = evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/secret/x"))
    assert not decision and "explicitly denied" in decision.reason


def test_wildcards_in_resources_span_slashes_and_are_case_sensitive():
    role = principal(allow("s3:GetObject", "arn:aws:s3:::b/out/*"))
    assert evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/out/run=1/part-0.parquet"))
    assert not evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/OUT/x"))
    assert not evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/out"))


def test_negated_operators_hold_when_the_key_is_absent_and_if_exists_tolerates_absence():
    role = principal(allow("s3:ListBucket", "arn:aws:s3:::b", {"StringNotEquals": {"s3:prefix": "private/"}}))
    assert evaluate(role, Request("s3:ListBucket", "arn:aws:s3:::b"))
    assert not evaluate(role, Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "private/"}))
    role = principal(allow("s3:ListBucket", "arn:aws:s3:::b", {"StringLikeIfExists": {"s3:prefix": "out/*"}}))
    assert evaluate(role, Request("s3:ListBucket", "arn:aws:s3:::b"))
    assert not evaluate(role, Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "in/"}))


def test_tag_keys_set_operators_and_null():
    only_ours = principal(
        allow(
            "elasticmapreduce:RunJobFlow",
            "*",
            {
                "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]},
                "Null": {"aws:RequestTag/a": "false"},
            },
        )
    )
    assert evaluate(
        only_ours, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["a"], "aws:RequestTag/a": "1"})
    )
    assert not evaluate(
        only_ours, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["a", "c"], "aws:RequestTag/a": "1"})
    )
    assert not evaluate(
        only_ours, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["b"], "aws:RequestTag/b": "1"})
    )
    any_b = principal(allow("elasticmapreduce:RunJobFlow", "*", {"ForAnyValue:StringEquals": {"aws:TagKeys": "b"}}))
    assert evaluate(any_b, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["a", "b"]}))
    assert not evaluate(any_b, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["a"]}))


def test_multivalued_key_with_a_single_value_operator_is_a_policy_error():
    role = principal(allow("elasticmapreduce:RunJobFlow", "*", {"StringEquals": {"aws:TagKeys": "a"}}))
    with pytest.raises(ValueError, match="multivalued"):
        evaluate(role, Request("elasticmapreduce:RunJobFlow", "*", {"aws:TagKeys": ["a"]}))


def test_pass_role_to_a_service():
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/EmrService"
    role = principal(
        allow("iam:PassRole", role_arn, {"StringEquals": {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}})
    )
    assert evaluate(role, Request("iam:PassRole", role_arn, {"iam:PassedToService": "elasticmapreduce.amazonaws.com"}))
    assert not evaluate(role, Request("iam:PassRole", role_arn, {"iam:PassedToService": "lambda.amazonaws.com"}))
    assert not evaluate(
        role,
        Request(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/Admin",
            {"iam:PassedToService": "elasticmapreduce.amazonaws.com"},
        ),
    )


def test_not_action_and_not_resource():
    role = principal({"Effect": "Allow", "NotAction": "s3:DeleteObject", "NotResource": "arn:aws:s3:::b/keep/*"})
    assert evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/x"))
    assert not evaluate(role, Request("s3:DeleteObject", "arn:aws:s3:::b/x"))
    assert not evaluate(role, Request("s3:GetObject", "arn:aws:s3:::b/keep/x"))


def test_trust_policy_source_conditions():
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "elasticmapreduce.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:elasticmapreduce:us-west-2:{ACCOUNT}:*"},
                },
            }
        ]
    }
    role = principal(trust=trust)
    assert may_assume(role, "elasticmapreduce.amazonaws.com", {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": CLUSTER})
    other = CLUSTER.replace(ACCOUNT, "999999999999")
    assert not may_assume(
        role, "elasticmapreduce.amazonaws.com", {"aws:SourceAccount": "999999999999", "aws:SourceArn": other}
    )
    assert not may_assume(role, "ec2.amazonaws.com", {"aws:SourceAccount": ACCOUNT, "aws:SourceArn": CLUSTER})


def test_managed_policies_are_checked_in_with_their_version():
    document = load_managed_policy("arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2")
    assert document.name == "AmazonEMRServicePolicy_v2 (v6)"
    with pytest.raises(ValueError, match="AdministratorAccess is not checked in"):
        load_managed_policy("arn:aws:iam::aws:policy/AdministratorAccess")


def test_template_principals_render_references_to_example_arns():
    from rehearsal.aws.example_values import ExampleValues
    from rehearsal.aws.iam_policy import TemplateIam

    template = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ec2.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ]
                    },
                    "ManagedPolicyArns": [
                        {
                            "Fn::Join": [
                                "",
                                ["arn:", {"Ref": "AWS::Partition"}, ":iam::aws:policy/AmazonSSMManagedInstanceCore"],
                            ]
                        }
                    ],
                },
            },
            "Profile": {
                "Type": "AWS::IAM::InstanceProfile",
                "Properties": {"InstanceProfileName": {"Ref": "Role"}, "Roles": [{"Ref": "Role"}]},
            },
            "Data": {"Type": "AWS::S3::Bucket"},
            "Policy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "P",
                    "Roles": [{"Ref": "Role"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "s3:GetObject",
                                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Data", "Arn"]}, "/in/*"]]},
                            },
                            {
                                "Effect": "Allow",
                                "Action": "iam:PassRole",
                                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Role}"},
                            },
                        ]
                    },
                },
            },
        }
    }
    values = ExampleValues(template, region="us-west-2", stack_name="S")
    assert values.physical_name("Profile") == values.ref("Role") == "S-Role"
    role = TemplateIam(template, values).principal("Role")
    assert [p.name for p in role.policies] == ["AmazonSSMManagedInstanceCore (v2)", "Policy"]
    assert evaluate(role, Request("s3:GetObject", "arn:aws:s3:::s-data/in/x.csv"))
    assert evaluate(role, Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/S-Role"))
    assert evaluate(role, Request("ssm:UpdateInstanceInformation", "*"))
    assert may_assume(role, "ec2.amazonaws.com")


def test_actions_of_services_that_share_a_prefix_are_known():
    # parliament lists SES v1, SES v2, Pinpoint Email and Mail Manager all under "ses"; SendRawEmail is v1's.
    identity = f"arn:aws:ses:us-west-2:{ACCOUNT}:identity/airflow@example.com"
    role = principal(allow(["ses:SendEmail", "ses:SendRawEmail"], identity))
    assert evaluate(role, Request("ses:SendRawEmail", identity))
    assert evaluate(role, Request("ses:SendEmail", identity))
