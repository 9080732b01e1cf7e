"""Network: the VPC, its flow logs and endpoint, the nodes' security group.

stacks/constructs/network.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk.assertions import Match, Template

from stacks.constructs.network import Network

from ..infra_support import bare_stack

DESTROY = cdk.RemovalPolicy.DESTROY


def test_network_two_azs_nat_flow_logs_s3_endpoint_and_emr_tags():
    stack = bare_stack()
    Network(stack, "Net", nat_gateways=1, removal_policy=DESTROY)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::EC2::Subnet", 4)
    t.resource_count_is("AWS::EC2::NatGateway", 1)
    t.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    t.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway", "ServiceName": Match.object_like({})}
    )
    private = t.find_resources("AWS::EC2::Subnet", {"Properties": {"MapPublicIpOnLaunch": False}})
    assert len(private) == 2
    for subnet in private.values():
        assert {"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"} in subnet["Properties"]["Tags"]


def test_network_nodes_group_admits_only_itself_on_airflow_ports():
    stack = bare_stack()
    net = Network(stack, "Net", nat_gateways=2, removal_policy=DESTROY)
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::EC2::NatGateway", 2)
    node_sg = stack.resolve(net.airflow_nodes_sg.security_group_id)
    rules = t.find_resources("AWS::EC2::SecurityGroupIngress")
    assert sorted(r["Properties"]["FromPort"] for r in rules.values()) == [8080, 8793, 8794]
    for rule in rules.values():
        assert rule["Properties"]["SourceSecurityGroupId"] == node_sg


def test_network_ui_access_group_opens_only_the_ui_port_to_the_given_cidr():
    stack = bare_stack()
    net = Network(stack, "Net", nat_gateways=1, removal_policy=DESTROY)
    net.ui_access_sg("10.20.0.0/16")
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupIngress": [
                Match.object_like({"CidrIp": "10.20.0.0/16", "FromPort": 8080, "ToPort": 8080, "IpProtocol": "tcp"})
            ]
        },
    )
