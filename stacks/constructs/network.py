"""VPC, flow logs, S3 gateway endpoint and the security group shared by the Airflow nodes."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from airflow_assets.bootstrap.node_env_file import DEFAULTS as NODE_ENV_DEFAULTS
from stacks.cfn import typed_child
from stacks.nag import EMR_TAG_KEY, LOG_GROUP_DEFAULT_ENCRYPTION, acknowledge_cdk_handler, acknowledge_checkov

# The ports the nodes listen on: node.env's defaults are their one definition; the stack opens them here
# and hands them to every node explicitly (stacks/airflow_stack.py), so the two cannot drift apart.
API_SERVER_PORT = int(NODE_ENV_DEFAULTS["API_SERVER_PORT"])
FLOWER_PORT = int(NODE_ENV_DEFAULTS["FLOWER_PORT"])  # bound to 127.0.0.1 on the worker: SSM port forwarding only
WORKER_LOG_SERVER_PORT = int(NODE_ENV_DEFAULTS["WORKER_LOG_SERVER_PORT"])
TRIGGERER_LOG_SERVER_PORT = int(NODE_ENV_DEFAULTS["TRIGGERER_LOG_SERVER_PORT"])


class Network(Construct):
    """Two AZs, public subnets for NAT only, private subnets for every workload."""

    def __init__(
        self, scope: Construct, construct_id: str, *, nat_gateways: int, removal_policy: cdk.RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            # aws-cdk-lib's custom resource revokes the rules of the VPC's default security group, which
            # would otherwise admit every member and send anywhere. Nothing here uses that group.
            restrict_default_security_group=True,
        )
        self._own_restrict_handler(removal_policy)
        flow_log_group = logs.LogGroup(
            self, "FlowLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal_policy
        )
        acknowledge_checkov(flow_log_group, "CKV_AWS_158", "VPC flow records: " + LOG_GROUP_DEFAULT_ENCRYPTION)
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group))
        for subnet in self.vpc.private_subnets:
            cdk.Tags.of(subnet).add(EMR_TAG_KEY, "true")
        self.private_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)

        self.airflow_nodes_sg = ec2.SecurityGroup(
            self,
            "AirflowNodesSg",
            vpc=self.vpc,
            description="Airflow api-server, scheduler and worker nodes",
            allow_all_outbound=True,
        )
        for port, why in (
            (API_SERVER_PORT, "Airflow execution API and UI between nodes"),
            (WORKER_LOG_SERVER_PORT, "worker log server read by the api-server"),
            (TRIGGERER_LOG_SERVER_PORT, "triggerer log server read by the api-server"),
        ):
            self.airflow_nodes_sg.add_ingress_rule(self.airflow_nodes_sg, ec2.Port.tcp(port), why)

    def _own_restrict_handler(self, removal_policy: cdk.RemovalPolicy) -> None:
        """Acknowledge aws-cdk-lib's default-group handler; on a destroyable stage, give it a log group that
        `cdk destroy` removes after the handler's last run (it runs again on delete), or Lambda would
        create /aws/lambda/<handler> outside the stack and leave it behind."""
        stack = cdk.Stack.of(self)
        provider = stack.node.find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        handler = typed_child(provider, "Handler", cdk.CfnResource)
        acknowledge_cdk_handler(
            handler,
            "aws-cdk-lib's handler that revokes the VPC default security group's rules (runs only during deployment)",
        )
        if removal_policy != cdk.RemovalPolicy.DESTROY:
            return
        log_group = logs.LogGroup(
            self,
            "RestrictDefaultSgLogs",
            log_group_name=f"/aws/lambda/{handler.ref}",
            retention=logs.RetentionDays.ONE_WEEK,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        acknowledge_checkov(
            log_group, "CKV_AWS_158", "output of the default-group handler: " + LOG_GROUP_DEFAULT_ENCRYPTION
        )
        self.vpc.node.find_child("RestrictDefaultSecurityGroupCustomResource").node.add_dependency(log_group)

    def airflow_node_subnets(self, role_name: str, *, spread_schedulers: bool) -> ec2.SubnetSelection:
        """The private subnet of one Airflow node. With `spread_schedulers` (prod) the scheduler node goes to
        the second AZ, so the two schedulers (one on the api-server node) survive the loss of one AZ; else
        every node is in the first AZ (no cross-AZ traffic)."""
        private = self.vpc.private_subnets
        return ec2.SubnetSelection(
            subnets=[private[1] if spread_schedulers and role_name == "scheduler" else private[0]]
        )

    def ui_access_sg(self, cidr: str) -> ec2.SecurityGroup:
        """A group for the api-server alone that admits the UI port from an operator network."""
        group = ec2.SecurityGroup(
            self, "UiAccessSg", vpc=self.vpc, description="Airflow UI from allowed_ui_cidr", allow_all_outbound=False
        )
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(API_SERVER_PORT), "Airflow UI from allowed_ui_cidr")
        return group
