"""Private DNS name of the api-server, so other nodes need no CloudFormation reference to it.

The scheduler node migrates the metadata DB and must come up first; the api-server waits for that
migration. A name (instead of the api-server's private IP) lets the scheduler's node.env point at
the api-server before the api-server exists, and survives an api-server replacement.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from constructs import Construct

ZONE_NAME = "airflow.internal"
API_SERVER_RECORD = "api-server"


class ClusterDns(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, construct_id)
        self.zone = route53.PrivateHostedZone(
            self, "Zone", zone_name=ZONE_NAME, vpc=vpc, comment="Airflow cluster internal names"
        )

    @property
    def api_server_host(self) -> str:
        return f"{API_SERVER_RECORD}.{ZONE_NAME}"

    def point_api_server_at(self, instance: ec2.Instance) -> None:
        route53.ARecord(
            self,
            "ApiServer",
            zone=self.zone,
            record_name=API_SERVER_RECORD,
            target=route53.RecordTarget.from_ip_addresses(instance.instance_private_ip),
            ttl=cdk.Duration.seconds(60),
        )
