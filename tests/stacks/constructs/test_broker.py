"""Broker: ElastiCache Redis with TLS and AUTH.

stacks/constructs/broker.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Template

from stacks.constructs.broker import PORT as REDIS_PORT
from stacks.constructs.broker import Broker

from ..infra_support import ingress_from, stack_with_vpc

DESTROY = cdk.RemovalPolicy.DESTROY


@pytest.mark.parametrize("multi_az", [False, True])
def test_broker_tls_encrypted_auth_from_secrets_manager(multi_az):
    stack, vpc, clients = stack_with_vpc()
    Broker(
        stack,
        "Broker",
        vpc=vpc,
        subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
        clients=clients,
        node_type="cache.t4g.micro",
        multi_az=multi_az,
        removal_policy=DESTROY,
    )
    t = Template.from_stack(stack)
    groups = t.find_resources("AWS::ElastiCache::ReplicationGroup")
    (props,) = [g["Properties"] for g in groups.values()]
    assert props["Engine"] == "redis"
    assert props["TransitEncryptionEnabled"] is True and props["AtRestEncryptionEnabled"] is True
    assert props["Port"] == REDIS_PORT
    assert props["NumCacheClusters"] == (2 if multi_az else 1)
    assert props["MultiAZEnabled"] is multi_az and props["AutomaticFailoverEnabled"] is multi_az
    secret_logical_id = next(iter(t.find_resources("AWS::SecretsManager::Secret")))
    assert props["AuthToken"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_logical_id}, ":SecretString:::}}"]]
    }
    t.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": {"ExcludePunctuation": True, "IncludeSpace": False, "PasswordLength": 64}},
    )
    rule = ingress_from(t, REDIS_PORT)
    assert rule["SourceSecurityGroupId"] == stack.resolve(clients.security_group_id)
    t.resource_count_is("AWS::ElastiCache::SubnetGroup", 1)
