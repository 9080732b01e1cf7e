"""One Airflow EC2 node: AL2023, IMDSv2, SSM only, encrypted root, bootstrapped by cfn-init and health-gated.

cfn-init unpacks the airflow_assets/ asset, writes /etc/airflow/node.env, downloads the trusted CA
bundles (the RDS CA bundle the DB client verifies the server with), mounts EFS (tls,iam, via
fstab) and runs `bootstrap/<role>.sh all`; the user data then sends `cfn-signal -e <exit code>`, so the
CreationPolicy fails the deployment when the role's health check fails. cfn-hup re-runs the same
config set when the metadata changes (a new asset hash after a DAG edit), which re-syncs the DAGs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from airflow_assets.bootstrap.node_env_file import PATH_ON_NODE as NODE_ENV_FILE
from airflow_assets.bootstrap.node_env_file import render as render_env_file
from stacks.cfn import cfn_resource
from stacks.config import REPO_ROOT
from stacks.constructs.broker import Broker
from stacks.constructs.database import CA_BUNDLE_PATH, DATABASE_NAME, MetadataDatabase
from stacks.constructs.network import API_SERVER_PORT, FLOWER_PORT, TRIGGERER_LOG_SERVER_PORT, WORKER_LOG_SERVER_PORT
from stacks.constructs.secrets import AirflowSecrets
from stacks.constructs.shared_fs import AIRFLOW_GID, AIRFLOW_UID, MOUNT_POINT
from stacks.nag import acknowledge
from stacks.outputs import add_output

REQUIREMENTS_SOURCE = REPO_ROOT / "requirements-airflow.txt"

AIRFLOW_HOME = "/opt/airflow"
SERVICE_USER = "airflow"
ASSETS_DIR = "/opt/airflow/assets"
# The pinned Airflow requirements travel inline in the metadata (a few lines) next to the assets.
REQUIREMENTS_FILE = "/opt/airflow/requirements-airflow.txt"
ROLES = ("api-server", "scheduler", "worker")
CONFIG_SET = "airflow"
BOOTSTRAP_TIMEOUT = cdk.Duration.minutes(40)
# cfn-init's `env` replaces the whole environment of a command instead of adding to it, so the
# bootstrap (and uv, the mysqlclient build's pkg-config/gcc, the airflow CLI it starts) gets exactly
# these variables: root's login PATH and HOME on AL2023, and a UTF-8 locale that glibc always has.
BOOTSTRAP_ENV = {
    "NODE_ENV_FILE": NODE_ENV_FILE,
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


@dataclass(frozen=True, kw_only=True)
class ClusterEnvironment:
    """What every node's node.env (contracts §4) holds alike: settings, endpoints, secret ARNs (never values)."""

    stage: str
    region: str
    executor: str
    scheduler_count: int
    api_server_workers: int
    database: MetadataDatabase
    broker: Broker | None
    secrets: AirflowSecrets
    remote_log_uri: str
    emr_pipeline_json: str

    def node_env(self, role_name: str, api_server_host: str) -> dict[str, str]:
        database, broker, secrets = self.database, self.broker, self.secrets
        return {
            "AIRFLOW_ROLE": role_name,
            "STAGE": self.stage,
            "AWS_REGION": self.region,
            "AIRFLOW_HOME": AIRFLOW_HOME,
            "AIRFLOW_VENV": f"{AIRFLOW_HOME}/venv",
            "AIRFLOW_USER": SERVICE_USER,
            # The EFS access point forces this uid/gid, so files the services write there are their own.
            "AIRFLOW_UID": str(AIRFLOW_UID),
            "AIRFLOW_GID": str(AIRFLOW_GID),
            "AIRFLOW_REQUIREMENTS": REQUIREMENTS_FILE,
            "DAGS_FOLDER": f"{MOUNT_POINT}/dags",
            "DAGS_SOURCE_DIR": f"{ASSETS_DIR}/dags",
            "EXECUTOR": self.executor,
            "SCHEDULER_COUNT": str(self.scheduler_count),
            "API_SERVER_WORKERS": str(self.api_server_workers),
            "API_SERVER_PORT": str(API_SERVER_PORT),
            "WORKER_LOG_SERVER_PORT": str(WORKER_LOG_SERVER_PORT),
            "TRIGGERER_LOG_SERVER_PORT": str(TRIGGERER_LOG_SERVER_PORT),
            "DB_HOST": database.host,
            "DB_PORT": database.instance.db_instance_endpoint_port,
            "DB_NAME": DATABASE_NAME,
            "DB_SECRET_ID": database.secret.secret_arn,
            # The bootstrap then verifies the RDS certificate and host name, not only encrypts.
            "DB_TLS": "true",
            "DB_CA_BUNDLE": CA_BUNDLE_PATH,
            **(
                {
                    "REDIS_HOST": broker.host,
                    "REDIS_PORT": broker.replication_group.attr_primary_end_point_port,
                    "REDIS_TLS": "true",
                    "REDIS_AUTH_SECRET_ID": broker.auth_secret.secret_arn,
                    "FLOWER_PASSWORD_SECRET_ID": secrets.flower_password.secret_arn,
                    "FLOWER_PORT": str(FLOWER_PORT),
                }
                if broker
                else {}
            ),
            "FERNET_KEY_SECRET_ID": secrets.fernet_seed.secret_arn,
            "JWT_SECRET_SECRET_ID": secrets.jwt_secret.secret_arn,
            "API_SECRET_KEY_SECRET_ID": secrets.api_secret_key.secret_arn,
            "ADMIN_PASSWORD_SECRET_ID": secrets.admin_password.secret_arn,
            "REMOTE_LOG_URI": self.remote_log_uri,
            "EMR_PIPELINE_JSON": self.emr_pipeline_json,
            "API_SERVER_HOST": api_server_host,
        }


class AirflowNode(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_groups: list[ec2.ISecurityGroup],
        instance_type: str,
        iam_role: iam.IRole,
        assets: s3_assets.Asset,
        environment: ClusterEnvironment,
        api_server_host: str,
        ca_bundles: Mapping[str, str],
        fstab_line: str,
        mount_point: str,
        termination_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        if role_name not in ROLES:
            raise ValueError(f"unknown Airflow role {role_name!r}; expected one of {', '.join(ROLES)}")
        self.role_name = role_name
        # The node's /etc/airflow/node.env, as rendered into its cfn-init metadata.
        self.env = environment.node_env(role_name, api_server_host)
        self.instance = ec2.Instance(
            self,
            "Instance",
            instance_name=f"airflow-{role_name}",
            vpc=vpc,
            vpc_subnets=subnets,
            security_group=security_groups[0],
            instance_type=ec2.InstanceType(instance_type),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(),
            role=iam_role,
            require_imdsv2=True,
            detailed_monitoring=True,
            disable_api_termination=termination_protection,
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        30, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3, delete_on_termination=True
                    ),
                )
            ],
        )
        # Applied after creation: the cfn-hup hook needs the instance's own logical id.
        self.instance.apply_cloud_formation_init(
            self._init(role_name, assets, self.env, ca_bundles, fstab_line, mount_point),
            config_sets=[CONFIG_SET],
            timeout=BOOTSTRAP_TIMEOUT,
            # Without the fingerprint a DAG change updates the metadata in place (cfn-hup applies it)
            # instead of rebooting or replacing the node.
            embed_fingerprint=False,
            print_log=True,
        )
        for group in security_groups[1:]:
            self.instance.add_security_group(group)
        if not termination_protection:
            acknowledge(
                self.instance,
                "AwsSolutions-EC29",
                "dev stage: `cdk destroy` must be able to terminate the node; the prod stage enables termination protection",
            )

    def add_port_forward_output(self, name: str, *, port: int, description: str) -> None:
        """An output with the SSM command that forwards `port` on this node to the same local port."""
        command = (
            f"aws ssm start-session --region {cdk.Stack.of(self).region} --target {self.instance.instance_id} "
            "--document-name AWS-StartPortForwardingSession "
            f'--parameters \'{{"portNumber":["{port}"],"localPortNumber":["{port}"]}}\''
        )
        add_output(self, name, value=command, description=description)

    def _init(
        self,
        role_name: str,
        assets: s3_assets.Asset,
        node_env: Mapping[str, str],
        ca_bundles: Mapping[str, str],
        fstab_line: str,
        mount_point: str,
    ) -> ec2.CloudFormationInit:
        """`ca_bundles` maps an on-node path to the HTTPS URL cfn-init downloads it from (through the NAT gateway)."""
        stack = cdk.Stack.of(self)
        logical_id = stack.get_logical_id(cfn_resource(self.instance))
        cfn_init = f"/opt/aws/bin/cfn-init -v --stack {cdk.Aws.STACK_NAME} --resource {logical_id} --region {cdk.Aws.REGION} -c {CONFIG_SET}"
        reload = ec2.InitServiceRestartHandle()
        return ec2.CloudFormationInit.from_config_sets(
            config_sets={CONFIG_SET: ["clean", "files", "bootstrap"]},
            configs={
                # Removing the previous unpack first makes a deleted DAG disappear on the next sync.
                "clean": ec2.InitConfig([ec2.InitCommand.shell_command(f"rm -rf {ASSETS_DIR}")]),
                "files": ec2.InitConfig(
                    [
                        ec2.InitPackage.yum("amazon-efs-utils"),
                        ec2.InitSource.from_existing_asset(ASSETS_DIR, assets),
                        ec2.InitFile.from_string(
                            NODE_ENV_FILE, render_env_file(node_env), mode="000640", owner="root", group="root"
                        ),
                        *(
                            ec2.InitFile.from_url(path, url, mode="000644", owner="root", group="root")
                            for path, url in ca_bundles.items()
                        ),
                        ec2.InitFile.from_file_inline(
                            REQUIREMENTS_FILE, str(REQUIREMENTS_SOURCE), mode="000644", owner="root", group="root"
                        ),
                        ec2.InitFile.from_string(
                            "/etc/cfn/cfn-hup.conf",
                            f"[main]\nstack={cdk.Aws.STACK_ID}\nregion={cdk.Aws.REGION}\ninterval=5\n",
                            mode="000400",
                            owner="root",
                            group="root",
                            service_restart_handles=[reload],
                        ),
                        ec2.InitFile.from_string(
                            "/etc/cfn/hooks.d/cfn-auto-reloader.conf",
                            "[cfn-auto-reloader-hook]\ntriggers=post.update\n"
                            f"path=Resources.{logical_id}.Metadata.AWS::CloudFormation::Init\n"
                            f"action={cfn_init}\nrunas=root\n",
                            mode="000400",
                            owner="root",
                            group="root",
                            service_restart_handles=[reload],
                        ),
                        ec2.InitCommand.shell_command(
                            f"mkdir -p {mount_point} && (grep -qF '{fstab_line}' /etc/fstab || echo '{fstab_line}' >> /etc/fstab) "
                            f"&& (mountpoint -q {mount_point} || mount {mount_point})",
                            key="10-mount-efs",
                        ),
                        # cfn-init runs a config's commands (by key) before its services.
                        ec2.InitCommand.shell_command(
                            f"bash {ASSETS_DIR}/bootstrap/cfn-hup-unit.sh", key="15-cfn-hup-unit"
                        ),
                        ec2.InitService.enable(
                            "cfn-hup", service_restart_handle=reload, service_manager=ec2.ServiceManager.SYSTEMD
                        ),
                    ]
                ),
                "bootstrap": ec2.InitConfig(
                    [
                        ec2.InitCommand.shell_command(
                            f"bash {ASSETS_DIR}/bootstrap/{role_name}.sh all",
                            key="20-bootstrap",
                            env=BOOTSTRAP_ENV,
                        )
                    ]
                ),
            },
        )
