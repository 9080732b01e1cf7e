"""Celery broker: ElastiCache Redis with TLS, encryption at rest and an AUTH token from Secrets Manager."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from constructs import Construct

from stacks.constructs.secrets import generated_secret
from stacks.nag import acknowledge
from stacks.outputs import add_output

ENGINE_VERSION = "7.1"
# A non-default port keeps drive-by scans for 6379 away (cdk-nag AEC5).
PORT = 6380


class Broker(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnet_ids: list[str],
        clients: ec2.ISecurityGroup,
        node_type: str,
        multi_az: bool,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.auth_secret = generated_secret(
            self,
            "AuthToken",
            length=64,
            removal_policy=removal_policy,
            description="ElastiCache AUTH token of the Airflow Celery broker",
        )
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=vpc, description="Airflow Celery broker", allow_all_outbound=False
        )
        self.security_group.add_ingress_rule(clients, ec2.Port.tcp(PORT), "Redis from the Airflow nodes")
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="Private subnets of the Airflow Celery broker",
            subnet_ids=subnet_ids,
        )
        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description="Airflow Celery broker",
            engine="redis",
            engine_version=ENGINE_VERSION,
            cache_node_type=node_type,
            num_cache_clusters=2 if multi_az else 1,
            automatic_failover_enabled=multi_az,
            multi_az_enabled=multi_az,
            port=PORT,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            # A {{resolve:secretsmanager:...}} reference: CloudFormation fetches the value, the template never holds it.
            auth_token=self.auth_secret.secret_value.unsafe_unwrap(),
            snapshot_retention_limit=1 if multi_az else 0,
            auto_minor_version_upgrade=True,
        )
        self.replication_group.apply_removal_policy(removal_policy)
        if not multi_az:
            acknowledge(
                self.replication_group,
                "AwsSolutions-AEC4",
                "dev stage: one cache node is enough for a demo broker; the prod stage runs two nodes with Multi-AZ failover",
            )
        add_output(
            self,
            "BrokerEndpoint",
            value=f"{self.host}:{self.replication_group.attr_primary_end_point_port}",
            description="Celery broker (TLS + AUTH)",
        )

    @property
    def host(self) -> str:
        return self.replication_group.attr_primary_end_point_address
