"""MetadataDatabase: RDS MySQL, TLS only, private.

stacks/constructs/database.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from stacks.constructs.database import PORT as DB_PORT
from stacks.constructs.database import MetadataDatabase

from ..infra_support import ingress_from, stack_with_vpc

DESTROY = cdk.RemovalPolicy.DESTROY


@pytest.mark.parametrize("multi_az", [False, True])
def test_database_mysql_84_tls_only_encrypted_and_private(multi_az):
    stack, vpc, clients = stack_with_vpc()
    db = MetadataDatabase(
        stack,
        "Db",
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        clients=clients,
        instance_type="t4g.micro",
        multi_az=multi_az,
        removal_policy=cdk.RemovalPolicy.RETAIN if multi_az else DESTROY,
    )
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "mysql",
            "EngineVersion": "8.4",
            "AutoMinorVersionUpgrade": True,
            "StorageEncrypted": True,
            "PubliclyAccessible": False,
            "MultiAZ": multi_az,
            "DeletionProtection": multi_az,
            "Port": str(DB_PORT),
            "DBInstanceClass": "db.t4g.micro",
            "EnableIAMDatabaseAuthentication": True,
            "BackupRetentionPeriod": 7 if multi_az else 1,
            "MasterUserPassword": Match.object_like({"Fn::Join": Match.any_value()}),
        },
    )
    t.has_resource_properties(
        "AWS::RDS::DBParameterGroup",
        {
            "Family": "mysql8.4",
            "Parameters": {
                "require_secure_transport": "1",
                "explicit_defaults_for_timestamp": "1",
                "character_set_server": "utf8mb4",
                "collation_server": "utf8mb4_0900_ai_ci",
            },
        },
    )
    rule = ingress_from(t, DB_PORT)
    assert rule["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.has_resource_properties(
        "AWS::SecretsManager::Secret", {"GenerateSecretString": Match.object_like({"GenerateStringKey": "password"})}
    )
    password = str(t.find_resources("AWS::RDS::DBInstance"))
    assert "resolve:secretsmanager" in password
    assert stack.resolve(db.secret.secret_arn)
