"""ClusterDns: the api-server's name in a private zone.

stacks/constructs/dns.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from ..infra_support import stack_with_vpc


def test_cluster_dns_names_the_api_server_in_a_private_zone():
    from stacks.constructs.dns import ClusterDns

    stack, vpc, _ = stack_with_vpc()
    instance = ec2.Instance(
        stack,
        "Api",
        vpc=vpc,
        instance_type=ec2.InstanceType("t3.small"),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(),
    )
    dns = ClusterDns(stack, "Dns", vpc=vpc)
    dns.point_api_server_at(instance)
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::Route53::HostedZone",
        {"Name": "airflow.internal.", "VPCs": [Match.object_like({"VPCId": stack.resolve(vpc.vpc_id)})]},
    )
    t.has_resource_properties(
        "AWS::Route53::RecordSet",
        {
            "Name": "api-server.airflow.internal.",
            "Type": "A",
            "TTL": "60",
            "ResourceRecords": [stack.resolve(instance.instance_private_ip)],
        },
    )
    assert dns.api_server_host == "api-server.airflow.internal"
