"""IAM for EMR: the service role and the EC2 instance role/profile, scoped to the pipeline's S3 prefixes."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.constructs.s3_access import s3_read, s3_write
from stacks.nag import acknowledge, acknowledge_wildcard_resources


WILDCARD_REASON = (
    "Hive and Spark choose object names at run time, so access is granted to one pipeline prefix (wildcard confined "
    "to it), and EMR cluster ids exist only after RunJobFlow, so describe actions use cluster/* of this account and region"
)


class EmrRoles(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, readable: list[str], writable: list[str]) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="EMR cluster EC2 instances: pipeline S3 prefixes only",
        )
        statements = [s for uri in readable for s in s3_read(uri)]
        statements += [s for uri in writable for s in s3_write(uri)]
        cluster_arn = stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")
        statements.append(
            iam.PolicyStatement(
                actions=["elasticmapreduce:DescribeCluster", "elasticmapreduce:ListInstanceGroups", "elasticmapreduce:ListBootstrapActions", "elasticmapreduce:ListInstances"],
                resources=[cluster_arn],
            )
        )
        policy = iam.Policy(self, "InstancePolicy", statements=statements)
        policy.attach_to_role(self.instance_role)
        acknowledge_wildcard_resources(policy, statements, WILDCARD_REASON)
        self.instance_profile = iam.InstanceProfile(self, "InstanceProfile", role=self.instance_role)

        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEMRServicePolicy_v2")],
            description="EMR service role (AmazonEMRServicePolicy_v2, limited to tagged network resources)",
        )
        # The v2 policy only passes EMR's default role names; our instance role must be allowed explicitly.
        self.instance_role.grant_pass_role(self.service_role)
        acknowledge(
            self.service_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]",
            "AWS maintains the exact EMR service permissions in this policy, and it only acts on resources tagged for-use-with-amazon-emr-managed-policies",
        )
