"""AirflowNodeRole: EMR grants conditioned on tags, PassRole on the two EMR roles only.

stacks/constructs/node_role.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from stacks.constructs.node_role import EMR_CLUSTER_ACTIONS, AirflowNodeRole

from ..infra_support import bare_stack


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
