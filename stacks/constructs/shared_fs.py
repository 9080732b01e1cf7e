"""EFS for the DAGs and plugins, mounted by every node with TLS and IAM authorization."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from constructs import Construct

# The Airflow service account on the nodes: the access point forces it, the stack passes it to the
# bootstrap (node.env AIRFLOW_UID/AIRFLOW_GID), which creates the service user and group with it.
AIRFLOW_UID = 50000
AIRFLOW_GID = 50000
MOUNT_POINT = "/mnt/efs/airflow"


class SharedFileSystem(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=vpc, description="Airflow DAGs file system", allow_all_outbound=False
        )
        self.security_group.add_ingress_rule(clients, ec2.Port.tcp(2049), "NFS from the Airflow nodes")
        self.file_system = efs.FileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnets=subnets,
            security_group=self.security_group,
            encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            lifecycle_policy=efs.LifecyclePolicy.AFTER_30_DAYS,
            enable_automatic_backups=removal_policy != cdk.RemovalPolicy.DESTROY,
            removal_policy=removal_policy,
        )
        self.access_point = self.file_system.add_access_point(
            "AirflowAccessPoint",
            path="/airflow",
            create_acl=efs.Acl(owner_uid=str(AIRFLOW_UID), owner_gid=str(AIRFLOW_GID), permissions="0775"),
            posix_user=efs.PosixUser(uid=str(AIRFLOW_UID), gid=str(AIRFLOW_GID)),
        )

    def grant_mount(self, grantee: iam.IGrantable) -> None:
        self.file_system.grant(grantee, "elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")

    @property
    def fstab_line(self) -> str:
        return (
            f"{self.file_system.file_system_id}:/ {MOUNT_POINT} efs "
            f"_netdev,noresvport,tls,iam,accesspoint={self.access_point.access_point_id} 0 0"
        )
