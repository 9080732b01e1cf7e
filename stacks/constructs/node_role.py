"""IAM role shared by the three Airflow nodes: SSM, its secrets, its S3 prefixes, this stack's EMR clusters."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import EMR_TAG_KEY, acknowledge, acknowledge_wildcard_resources, wildcard_resource_finding

# Every cluster the DAGs create carries STACK_TAG_KEY=<stack name>; the node role acts on no other.
STACK_TAG_KEY = "airflow-emr-stack"
EMR_SERVICE = "elasticmapreduce.amazonaws.com"
# The actions the DAGs (and EMR on their behalf, for the tags and auto-termination policy of
# RunJobFlow) use on an existing cluster.
EMR_CLUSTER_ACTIONS = [
    "elasticmapreduce:AddJobFlowSteps",
    "elasticmapreduce:AddTags",
    "elasticmapreduce:CancelSteps",
    "elasticmapreduce:DescribeCluster",
    "elasticmapreduce:DescribeStep",
    "elasticmapreduce:ListSteps",
    "elasticmapreduce:PutAutoTerminationPolicy",
    "elasticmapreduce:TerminateJobFlows",
]
# EMR creates this service-linked role on an account's first cluster, with the caller's permissions.
EMR_CLEANUP_ROLE = "aws-service-role/elasticmapreduce.amazonaws.com/AWSServiceRoleForEMRCleanup"


def cluster_tags(stack: cdk.Stack) -> dict[str, str]:
    """The tags RunJobFlow must carry: AmazonEMRServicePolicy_v2's, and this stack's ownership tag."""
    return {EMR_TAG_KEY: "true", STACK_TAG_KEY: stack.stack_name}


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

    def allow_emr_job_flows(self, *, service_role: iam.IRole, instance_role: iam.IRole) -> None:
        """Create clusters tagged as this stack's, act on those only, and pass exactly the two EMR roles."""
        stack = cdk.Stack.of(self)
        tags = cluster_tags(stack)
        self.allow(
            iam.PolicyStatement(
                actions=["elasticmapreduce:RunJobFlow"],
                resources=["*"],
                conditions={"StringEquals": {f"aws:RequestTag/{key}": value for key, value in tags.items()}},
            ),
            wildcard_reason=(
                "RunJobFlow supports no resource type, so IAM authorises it against * only; the grant holds only for "
                f"requests tagging the cluster {EMR_TAG_KEY}=true and {STACK_TAG_KEY}=<this stack>"
            ),
        )
        self.allow(
            iam.PolicyStatement(
                actions=EMR_CLUSTER_ACTIONS,
                resources=[stack.format_arn(service="elasticmapreduce", resource="cluster", resource_name="*")],
                conditions={"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack.stack_name}},
            ),
            wildcard_reason=(
                "EMR cluster ids exist only after RunJobFlow; the wildcard is confined to clusters of this account and "
                f"region that carry this stack's {STACK_TAG_KEY} tag"
            ),
        )
        for role, service in ((service_role, EMR_SERVICE), (instance_role, "ec2.amazonaws.com")):
            self.allow(
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": service}},
                )
            )
        self.allow(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[stack.format_arn(service="iam", region="", resource="role", resource_name=EMR_CLEANUP_ROLE)],
                conditions={"StringEquals": {"iam:AWSServiceName": EMR_SERVICE}},
            )
        )

    def acknowledge_asset_grant(self, asset_bucket: s3.IBucket) -> None:
        """cfn-init downloads the airflow_assets/ zip with the read grant aws-cdk-lib attaches to the role."""
        policy = self.role.node.find_child("DefaultPolicy")
        reason = "aws-cdk-lib's asset read grant, needed by cfn-init to download the airflow_assets/ bundle from the CDK bootstrap asset bucket"
        for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*"):
            acknowledge(policy, f"AwsSolutions-IAM5[Action::{action}]", reason)
        acknowledge(policy, wildcard_resource_finding(policy, f"{asset_bucket.bucket_arn}/*"), reason)
