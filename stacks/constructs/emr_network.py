"""EMR managed security groups, pre-created with every rule EMR would otherwise add at run time.

When a RunJobFlow names groups that lack EMR's rules, EMR adds them itself; those rules reference
the groups mutually and are unknown to CloudFormation, so `cdk destroy` then fails on the groups
and the VPC. Declaring the complete rule set here leaves EMR nothing to add.
Rules: docs.aws.amazon.com/emr/latest/ManagementGuide/emr-man-sec-groups.html (private subnets).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.cfn import cfn_resource
from stacks.nag import EMR_TAG_KEY

SERVICE_ACCESS_PORT = 9443
CLUSTER_MANAGER_PORT = 8443
# aws-cdk-lib's own "match nothing" egress rule (what it renders for allow_all_outbound=False).
MATCH_NO_TRAFFIC = {
    "CidrIp": "255.255.255.255/32",
    "Description": "Disallow all traffic",
    "IpProtocol": "icmp",
    "FromPort": 252,
    "ToPort": 86,
}


def keep_default_egress_out(group: ec2.SecurityGroup) -> None:
    """Stop EC2 from giving `group` its default allow-all egress rule.

    EC2 adds that rule to a group created without egress rules of its own. aws-cdk-lib drops its
    match-nothing placeholder as soon as any egress rule is added, even one to another security group,
    which it must declare as a separate AWS::EC2::SecurityGroupEgress (an inline one would be a cycle):
    the group is then created bare and keeps allow-all next to the declared rules. The placeholder,
    restored here, matches no packet, so the separate rules are the whole egress.
    """
    cfn_resource(group).add_property_override("SecurityGroupEgress", [MATCH_NO_TRAFFIC])


class EmrSecurityGroups(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        self.primary = ec2.SecurityGroup(
            self, "Primary", vpc=vpc, description="EMR managed: primary node", allow_all_outbound=True
        )
        self.core = ec2.SecurityGroup(
            self, "Core", vpc=vpc, description="EMR managed: core and task nodes", allow_all_outbound=True
        )
        self.service_access = ec2.SecurityGroup(
            self,
            "ServiceAccess",
            vpc=vpc,
            description="EMR managed: service access (private subnet)",
            allow_all_outbound=False,
        )
        for group in (self.primary, self.core, self.service_access):
            cdk.Tags.of(group).add(EMR_TAG_KEY, "true")

        for target in (self.primary, self.core):
            for peer, name in ((self.primary, "primary"), (self.core, "core")):
                for port in (ec2.Port.all_tcp(), ec2.Port.all_udp(), ec2.Port.all_icmp()):
                    target.add_ingress_rule(peer, port, f"EMR cluster traffic from {name}")
            target.add_ingress_rule(
                self.service_access, ec2.Port.tcp(CLUSTER_MANAGER_PORT), "EMR cluster manager from service access"
            )
            self.service_access.add_egress_rule(
                target, ec2.Port.tcp(CLUSTER_MANAGER_PORT), "EMR cluster manager to cluster nodes"
            )
        self.service_access.add_ingress_rule(
            self.primary, ec2.Port.tcp(SERVICE_ACCESS_PORT), "EMR service access from primary"
        )
        keep_default_egress_out(self.service_access)
