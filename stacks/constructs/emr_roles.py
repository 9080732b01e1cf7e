"""IAM for EMR: the service role and the EC2 instance role/profile, scoped to the pipeline's S3 locations."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.constructs.s3_access import emrfs_read, emrfs_write
from stacks.nag import acknowledge, acknowledge_wildcard_resources

EMR_SERVICE = "elasticmapreduce.amazonaws.com"

WILDCARD_REASON = (
    "Hive and Spark choose object names at run time, so access is granted to one pipeline prefix (wildcard confined "
    "to it), and EMR cluster ids exist only after RunJobFlow, so describe actions use cluster/* of this account and "
    "region, conditioned on the tag this stack puts on its own clusters"
)


class EmrRoles(Construct):
    """`readable` are objects or prefixes the steps read, `writable` prefixes they write (EMRFS semantics).

    `cluster_tag` is the (key, value) every cluster of this stack carries: the instance role may
    describe only clusters with it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        readable: list[str],
        writable: list[str],
        cluster_tag: tuple[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self.instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="EMR cluster EC2 instances: pipeline S3 locations only",
        )
        statements = [s for uri in readable for s in emrfs_read(uri)]
        statements += [s for uri in writable for s in emrfs_write(uri)]
        tag_key, tag_value = cluster_tag
        statements.append(
            iam.PolicyStatement(
                actions=[
                    "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:ListInstanceGroups",
                    "elasticmapreduce:ListBootstrapActions",
                    "elasticmapreduce:ListInstances",
                ],
                resources=[stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{tag_key}": tag_value}},
            )
        )
        policy = iam.Policy(self, "InstancePolicy", statements=statements)
        policy.attach_to_role(self.instance_role)
        acknowledge_wildcard_resources(policy, statements, WILDCARD_REASON)
        # EMR rejects an instance profile whose name differs from its role's ("invalid instance
        # profile"); naming the profile after the role (Ref = the generated role name) keeps them equal.
        self.instance_profile = iam.InstanceProfile(
            self, "InstanceProfile", role=self.instance_role, instance_profile_name=self.instance_role.role_name
        )

        # Confused-deputy protection as EMR's docs recommend for the service role: only EMR acting
        # for a resource of this account and region may assume it.
        self.service_role = iam.Role(
            self,
            "ServiceRole",
            assumed_by=iam.ServicePrincipal(EMR_SERVICE).with_conditions(
                {
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="elasticmapreduce", resource="*", arn_format=cdk.ArnFormat.NO_RESOURCE_NAME
                        )
                    },
                }
            ),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEMRServicePolicy_v2")],
            description="EMR service role (AmazonEMRServicePolicy_v2, limited to tagged network resources)",
        )
        # The v2 policy only passes EMR's default role names; EMR passes our instance role to EC2.
        self.service_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.instance_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        acknowledge(
            self.service_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2]",
            "AWS maintains the exact EMR service permissions in this policy, and it only acts on resources tagged for-use-with-amazon-emr-managed-policies",
        )
