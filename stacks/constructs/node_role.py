"""IAM role shared by the three Airflow nodes: SSM, its secrets, its S3 prefixes, EMR job flows."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_wildcard_resources, wildcard_resource_finding

EMR_JOB_FLOW_ACTIONS = [
    "elasticmapreduce:RunJobFlow",
    "elasticmapreduce:PutAutoTerminationPolicy",
    "elasticmapreduce:AddTags",
    "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:CancelSteps",
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:DescribeStep",
    "elasticmapreduce:ListSteps",
    "elasticmapreduce:TerminateJobFlows",
]


class AirflowNodeRole(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
            description="Airflow nodes: Session Manager, Airflow secrets, pipeline S3 prefixes, EMR job flows, SES",
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
            "AWS maintains the Session Manager agent permissions in this policy; it replaces SSH (no key pair, no port 22)",
        )
        self.policy = iam.Policy(self, "Policy")
        self.policy.attach_to_role(self.role)

    def allow(self, *statements: iam.PolicyStatement, wildcard_reason: str | None = None) -> None:
        """Add statements; a statement with a wildcard resource must say why (it becomes the cdk-nag acknowledgment)."""
        self.policy.add_statements(*statements)
        if wildcard_reason:
            acknowledge_wildcard_resources(self.policy, list(statements), wildcard_reason)

    def allow_emr_job_flows(self, *, pass_roles: list[iam.IRole]) -> None:
        stack = cdk.Stack.of(self)
        self.allow(
            iam.PolicyStatement(
                actions=EMR_JOB_FLOW_ACTIONS,
                resources=[stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")],
            ),
            wildcard_reason="EMR cluster ids exist only after RunJobFlow; the wildcard is confined to EMR clusters of this account and region",
        )
        self.allow(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role.role_arn for role in pass_roles],
                conditions={"StringEquals": {"iam:PassedToService": ["elasticmapreduce.amazonaws.com", "ec2.amazonaws.com"]}},
            ),
        )

    def acknowledge_asset_grant(self, asset_bucket: s3.IBucket) -> None:
        """cfn-init downloads the airflow_assets/ zip with the read grant aws-cdk-lib attaches to the role."""
        policy = self.role.node.find_child("DefaultPolicy")
        reason = "aws-cdk-lib's asset read grant, needed by cfn-init to download the airflow_assets/ bundle from the CDK bootstrap asset bucket"
        for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*"):
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", reason)
        acknowledge(policy, wildcard_resource_finding(policy, f"{asset_bucket.bucket_arn}/*"), reason)
