"""What EMR checks with the roles a RunJobFlow names before its cluster starts, which moto skips.

EMR assumes the service role (its trust policy must let elasticmapreduce.amazonaws.com in, with
the confused-deputy conditions EMR supplies: aws:SourceAccount, aws:SourceArn of the cluster), then
launches the instances with it: EC2 requests tagged with the cluster's tags, which
AmazonEMRServicePolicy_v2 allows only with `for-use-with-amazon-emr-managed-policies=true`
("Service role <arn> has insufficient EC2 permissions" otherwise), passing the instance profile's
role to EC2. The instance profile must be named like its role ("invalid instance profile", EMR
Management Guide, "Customize IAM roles"). The decisions are iam_policy.evaluate's, on the policies
of the synthesized template's roles plus the checked-in AWS managed policies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rehearsal.aws.iam_policy import Principal, Request, evaluate, may_assume

EMR_SERVICE = "elasticmapreduce.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
# The EC2 requests EMR makes with the service role to launch a cluster's instances: (action, resource).
EMR_LAUNCH = [
    ("ec2:RunInstances", "instance/*"),
    ("ec2:RunInstances", "volume/*"),
    ("ec2:CreateFleet", "instance/*"),
    ("ec2:CreateLaunchTemplate", "launch-template/*"),
]


def request_tags(tags: Mapping[str, str]) -> dict:
    return {**{f"aws:RequestTag/{key}": value for key, value in tags.items()}, "aws:TagKeys": list(tags)}


def launch_requests(region: str, account: str, tags: Mapping[str, str]) -> list[Request]:
    """EMR tags what it launches with the cluster's tags."""
    return [
        Request(action, f"arn:aws:ec2:{region}:{account}:{resource}", request_tags(tags))
        for action, resource in EMR_LAUNCH
    ]


def assume_context(account: str, cluster_arn: str) -> dict[str, str]:
    """The keys EMR supplies when it assumes the service role for a cluster."""
    return {"aws:SourceAccount": account, "aws:SourceArn": cluster_arn}


@dataclass(frozen=True)
class EmrRoles:
    """The principals the local EMR checks: role name -> template principal (None: not in the template)."""

    account: str
    region: str
    principal_of: Callable[[str], Principal | None]

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    def start_problem(
        self, *, service_role: str, instance_role: str, tags: Mapping[str, str], cluster_id: str
    ) -> str | None:
        """Why EMR would fail this cluster at start (VALIDATION_ERROR), or None."""
        cluster_arn = f"arn:aws:elasticmapreduce:{self.region}:{self.account}:cluster/{cluster_id}"
        service = self.principal_of(service_role)
        service_arn = self.role_arn(service_role)
        if service is None:
            return f"The rehearsal knows no policies for service role {service_arn}: it is not a role of the synthesized template"
        if self.principal_of(instance_role) is None:
            return f"The rehearsal knows no policies for instance role {self.role_arn(instance_role)}: it is not a role of the synthesized template"
        trusted = may_assume(service, EMR_SERVICE, assume_context(self.account, cluster_arn))
        if not trusted:
            return f"Service role {service_arn} cannot be assumed by {EMR_SERVICE}: {trusted.reason}"
        for request in launch_requests(self.region, self.account, tags):
            if not evaluate(service, request):
                return f"Service role {service_arn} has insufficient EC2 permissions"
        passed = evaluate(
            service, Request("iam:PassRole", self.role_arn(instance_role), {"iam:PassedToService": EC2_SERVICE})
        )
        if not passed:
            return f"Service role {service_arn} may not pass the instance profile's role {instance_role} to EC2: {passed.reason}"
        return None


def profile_problem(profile: str, roles: list[str]) -> str | None:
    """EMR's rule on the JobFlowRole instance profile: one role, named like the profile."""
    if roles != [profile]:
        return f"Invalid InstanceProfile: {profile}. EMR requires the instance profile to be named like its role (it holds {roles or 'no role'})"
    return None
