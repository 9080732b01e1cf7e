"""SharedFileSystem: encrypted EFS, its access point and the fstab line.

stacks/constructs/shared_fs.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from stacks.constructs.shared_fs import SharedFileSystem

from ..infra_support import ingress_from, stack_with_vpc

DESTROY = cdk.RemovalPolicy.DESTROY


def test_shared_fs_encrypted_access_point_nfs_from_clients_and_fstab_line():
    stack, vpc, clients = stack_with_vpc()
    fs = SharedFileSystem(
        stack,
        "Fs",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        clients=clients,
        removal_policy=DESTROY,
    )
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    fs.grant_mount(role)
    t = Template.from_stack(stack)
    t.has_resource_properties("AWS::EFS::FileSystem", {"Encrypted": True})
    t.has_resource_properties(
        "AWS::EFS::AccessPoint",
        {"RootDirectory": {"Path": "/airflow", "CreationInfo": Match.object_like({"Permissions": "0775"})}},
    )
    assert ingress_from(t, 2049)["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]})
                ]
            }
        },
    )
    line = str(stack.resolve(fs.fstab_line))
    assert " efs _netdev,noresvport,tls,iam,accesspoint=" in line
