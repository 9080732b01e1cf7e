"""The deployment unit: the whole Airflow 3 cluster and the EMR pipeline resources of one stage."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from airflow_assets.dags.emr_pipeline.variable import EmrPipelineVariable
from stacks.config import REPO_ROOT, DeploymentConfig
from stacks.connection_budget import check_connection_budget
from stacks.constructs.airflow_node import ASSETS_DIR, REQUIREMENTS_FILE, AirflowNode
from stacks.constructs.broker import Broker
from stacks.constructs.buckets import Buckets
from stacks.constructs.database import CA_BUNDLE_PATH, CA_BUNDLE_URL, DATABASE_NAME, MetadataDatabase
from stacks.constructs.dns import ClusterDns
from stacks.constructs.emr_network import EmrSecurityGroups
from stacks.constructs.emr_roles import EmrRoles
from stacks.constructs.mail import Mail
from stacks.constructs.network import (
    API_SERVER_PORT,
    FLOWER_PORT,
    TRIGGERER_LOG_SERVER_PORT,
    WORKER_LOG_SERVER_PORT,
    Network,
)
from stacks.constructs.node_role import STACK_TAG_KEY, AirflowNodeRole, cluster_tags
from stacks.constructs.s3_access import s3_read, s3_write
from stacks.constructs.secrets import AirflowSecrets
from stacks.constructs.shared_fs import AIRFLOW_GID, AIRFLOW_UID, MOUNT_POINT, SharedFileSystem
from stacks.constructs.uploads import ASSET_EXCLUDES, RepoUploads
from stacks.s3_layout import EMR_STEPS_PREFIX, INPUT_PREFIX, PipelineUris
from stacks.start_order import STARTS_AFTER

AIRFLOW_ASSETS_DIR = REPO_ROOT / "airflow_assets"
EMR_STEPS_DIR = REPO_ROOT / "emr_steps"
AIRFLOW_HOME = "/opt/airflow"
SERVICE_USER = "airflow"


class AirflowStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Self-managed Apache Airflow 3 cluster driving an EMR PySpark pipeline",
            **kwargs,
        )
        self.config = config
        removal = cdk.RemovalPolicy.RETAIN if config.is_prod else cdk.RemovalPolicy.DESTROY

        network = Network(self, "Network", nat_gateways=config.nat_gateways, removal_policy=removal)
        clients = network.airflow_nodes_sg
        buckets = Buckets(self, "Buckets", removal_policy=removal)
        secrets = AirflowSecrets(self, "Secrets", removal_policy=removal, with_flower=config.uses_celery)
        database = MetadataDatabase(
            self,
            "MetadataDb",
            vpc=network.vpc,
            subnets=network.private_subnets,
            clients=clients,
            instance_type=config.db_instance_type,
            multi_az=config.is_prod,
            removal_policy=removal,
        )
        broker = None
        if config.uses_celery:
            broker = Broker(
                self,
                "Broker",
                vpc=network.vpc,
                subnet_ids=[subnet.subnet_id for subnet in network.vpc.private_subnets],
                clients=clients,
                node_type=config.cache_node_type,
                multi_az=config.is_prod,
                removal_policy=removal,
            )
        shared_fs = SharedFileSystem(
            self, "SharedFs", vpc=network.vpc, subnets=network.private_subnets, clients=clients, removal_policy=removal
        )
        emr_sgs = EmrSecurityGroups(self, "EmrSecurityGroups", vpc=network.vpc)
        mail = Mail(
            self,
            "Mail",
            sender_email=config.sender_email,
            alert_email=config.alert_email,
            existing_identities=config.existing_ses_identities,
        )

        uris = PipelineUris.in_buckets(
            data_bucket=buckets.data.bucket_name,
            logs_bucket=buckets.logs.bucket_name,
            code_bucket=buckets.code.bucket_name,
            input_uri=config.input_uri,
            output_uri=config.output_uri,
        )
        emr_roles = EmrRoles(
            self,
            "EmrRoles",
            readable=[uris.input, uris.steps],
            writable=[uris.output, uris.emr_logs],
            cluster_tag=(STACK_TAG_KEY, self.stack_name),
        )
        assets = s3_assets.Asset(self, "AirflowAssets", path=str(AIRFLOW_ASSETS_DIR), exclude=ASSET_EXCLUDES)
        RepoUploads(
            self,
            "Uploads",
            emr_steps_dir=EMR_STEPS_DIR,
            code_bucket=buckets.code,
            code_prefix=EMR_STEPS_PREFIX,
            # The sample is uploaded only when the pipeline reads it.
            dataset=config.dataset_path if config.input_uri is None else None,
            data_bucket=buckets.data,
            dataset_prefix=INPUT_PREFIX,
            asset_bucket=assets.bucket,
            removal_policy=removal,
        )

        # The worker node runs task code, so it gets a role of its own that cannot read the metadata DB
        # master secret, the JWT secret, the Fernet seed or the admin password (contracts §3).
        node_roles = {"scheduler": AirflowNodeRole(self, "NodeRole")}
        node_roles["api-server"] = node_roles["scheduler"]
        if config.uses_celery:
            node_roles["worker"] = AirflowNodeRole(self, "WorkerRole")
        for secret in (*secrets.all, database.secret, *([broker.auth_secret] if broker else [])):
            secret.grant_read(node_roles["scheduler"].role)
        if broker:
            for secret in (secrets.api_secret_key, broker.auth_secret, secrets.flower_password):
                secret.grant_read(node_roles["worker"].role)
        for node_role in dict.fromkeys(node_roles.values()):
            node_role.allow(
                # emr_logs: the outcome mail quotes the steps' failure summaries written there.
                *s3_read(uris.steps),
                *s3_read(uris.input),
                *s3_read(uris.output),
                *s3_read(uris.emr_logs),
                *s3_write(uris.airflow_logs),
                wildcard_reason="Airflow task logs, EMR steps and pipeline data have run-time object names; each wildcard is confined to one prefix of contracts §5",
            )
            node_role.allow_emr_job_flows(service_role=emr_roles.service_role, instance_role=emr_roles.instance_role)
            node_role.acknowledge_asset_grant(assets.bucket)
            mail.grant_send(node_role.role)
            shared_fs.grant_mount(node_role.role)

        self.emr_pipeline = EmrPipelineVariable(
            region=config.region,
            release_label=config.emr_release_label,
            service_role=emr_roles.service_role.role_name,
            job_flow_role=emr_roles.instance_profile.instance_profile_name,
            subnet_id=network.vpc.private_subnets[0].subnet_id,
            emr_managed_primary_sg=emr_sgs.primary.security_group_id,
            emr_managed_core_sg=emr_sgs.core.security_group_id,
            service_access_sg=emr_sgs.service_access.security_group_id,
            log_uri=uris.emr_logs,
            steps_uri=uris.steps,
            input_uri=uris.input,
            output_uri=uris.output,
            hive_database=config.hive_database,
            primary_instance_type=config.emr_primary_instance_type,
            core_instance_type=config.emr_core_instance_type,
            core_instance_count=config.emr_core_instance_count,
            idle_timeout_seconds=config.emr_idle_timeout_seconds,
            cluster_tags=cluster_tags(self),
            sender_email=config.sender_email,
            alert_email=config.alert_email,
        )
        node_env = self._node_env(database, broker, secrets, uris)
        api_server, worker = self._nodes(network, node_roles, assets, shared_fs, node_env)
        self._outputs(api_server, worker, buckets, database, broker, secrets, uris)

    def _node_env(
        self, database: MetadataDatabase, broker: Broker | None, secrets: AirflowSecrets, uris: PipelineUris
    ) -> dict[str, str]:
        """node.env of contracts §4, common to every node (secret ARNs only, never values)."""
        config = self.config
        return {
            "STAGE": config.stage,
            "AWS_REGION": config.region,
            "AIRFLOW_HOME": AIRFLOW_HOME,
            "AIRFLOW_VENV": f"{AIRFLOW_HOME}/venv",
            "AIRFLOW_USER": SERVICE_USER,
            # The EFS access point forces this uid/gid, so files the services write there are their own.
            "AIRFLOW_UID": str(AIRFLOW_UID),
            "AIRFLOW_GID": str(AIRFLOW_GID),
            "AIRFLOW_REQUIREMENTS": REQUIREMENTS_FILE,
            "DAGS_FOLDER": f"{MOUNT_POINT}/dags",
            "DAGS_SOURCE_DIR": f"{ASSETS_DIR}/dags",
            "EXECUTOR": config.executor,
            "SCHEDULER_COUNT": str(config.scheduler_count),
            "API_SERVER_WORKERS": str(config.api_server_workers),
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
            "REMOTE_LOG_URI": uris.airflow_logs,
            "EMR_PIPELINE_JSON": self.to_json_string(self.emr_pipeline.to_dict()),
        }

    def _nodes(
        self,
        network: Network,
        node_roles: dict[str, AirflowNodeRole],
        assets: s3_assets.Asset,
        shared_fs: SharedFileSystem,
        node_env: dict[str, str],
    ):
        config = self.config

        private = network.vpc.private_subnets
        node_envs: list[dict[str, str]] = []

        def node(
            role_name: str,
            construct_id: str,
            instance_type: str,
            api_server_host: str,
            extra_sgs: list[ec2.ISecurityGroup],
        ) -> AirflowNode:
            # prod puts the scheduler node in the second AZ, so the two schedulers (one on the api-server
            # node) survive the loss of one AZ; dev keeps every node in one AZ (no cross-AZ traffic).
            subnet = private[1] if config.is_prod and role_name == "scheduler" else private[0]
            node_envs.append({"AIRFLOW_ROLE": role_name, **node_env, "API_SERVER_HOST": api_server_host})
            return AirflowNode(
                self,
                construct_id,
                role_name=role_name,
                vpc=network.vpc,
                subnets=ec2.SubnetSelection(subnets=[subnet]),
                security_groups=[network.airflow_nodes_sg, *extra_sgs],
                instance_type=instance_type,
                iam_role=node_roles[role_name].role,
                assets=assets,
                node_env={"AIRFLOW_ROLE": role_name, **node_env, "API_SERVER_HOST": api_server_host},
                ca_bundles={CA_BUNDLE_PATH: CA_BUNDLE_URL},
                fstab_line=shared_fs.fstab_line,
                mount_point=MOUNT_POINT,
                termination_protection=config.is_prod,
            )

        ui_sgs = [network.ui_access_sg(config.allowed_ui_cidr)] if config.allowed_ui_cidr else []
        dns = ClusterDns(self, "Dns", vpc=network.vpc)
        # The scheduler node migrates the metadata DB, so it is created first; the api-server and the
        # worker start once it has passed its health check (STARTS_AFTER). They find the api-server by name.
        scheduler = node("scheduler", "Scheduler", config.scheduler_instance_type, dns.api_server_host, [])
        api_server = node("api-server", "ApiServer", config.api_server_instance_type, "127.0.0.1", ui_sgs)
        dns.point_api_server_at(api_server.instance)
        worker = (
            node("worker", "Worker", config.worker_instance_type, dns.api_server_host, [])
            if config.uses_celery
            else None
        )
        nodes = {
            role: member
            for role, member in (("scheduler", scheduler), ("api-server", api_server), ("worker", worker))
            if member
        }
        for role, member in nodes.items():
            for before in STARTS_AFTER[role]:
                member.node.add_dependency(nodes[before])
        # Fail synthesis, not the first busy hour, when the nodes' pools can outgrow the database.
        check_connection_budget(config.db_instance_type, node_envs, is_unresolved=cdk.Token.is_unresolved)
        # A node boots only when it can mount the file system and its whole IAM policy is in place.
        for role_name, member in (("api-server", api_server), ("scheduler", scheduler), ("worker", worker)):
            if member:
                member.node.add_dependency(shared_fs.file_system.mount_targets_available, node_roles[role_name].policy)
        return api_server, worker

    def _outputs(
        self,
        api_server: AirflowNode,
        worker: AirflowNode | None,
        buckets: Buckets,
        database: MetadataDatabase,
        broker: Broker | None,
        secrets: AirflowSecrets,
        uris: PipelineUris,
    ) -> None:
        def port_forward(instance: ec2.Instance, port: int) -> str:
            return (
                f"aws ssm start-session --region {self.region} --target {instance.instance_id} "
                "--document-name AWS-StartPortForwardingSession "
                f'--parameters \'{{"portNumber":["{port}"],"localPortNumber":["{port}"]}}\''
            )

        outputs = {
            "UiPortForwardCommand": (
                port_forward(api_server.instance, API_SERVER_PORT),
                f"run, then open http://localhost:{API_SERVER_PORT} (user admin)",
            ),
            "AdminPasswordCommand": (
                f"aws secretsmanager get-secret-value --region {self.region} --secret-id {secrets.admin_password.secret_arn} --query SecretString --output text",
                "prints the admin password (the value is not in the template)",
            ),
            "DataBucketName": (buckets.data.bucket_name, "input CSV and Parquet output"),
            "LogsBucketName": (buckets.logs.bucket_name, "Airflow task logs (airflow/) and EMR logs (emr/)"),
            "CodeBucketName": (buckets.code.bucket_name, "EMR steps (emr_steps/)"),
            "InputUri": (uris.input, "CSV read by the EMR pipeline"),
            "OutputUri": (uris.output, "Parquet written by the EMR pipeline"),
            "DbEndpoint": (
                f"{database.host}:{database.instance.db_instance_endpoint_port}",
                "Airflow metadata DB (TLS only)",
            ),
            "EmrPipelineVariable": (
                self.to_json_string(self.emr_pipeline.to_dict()),
                "value of the Airflow Variable emr_pipeline",
            ),
        }
        if worker:
            outputs["FlowerPortForwardCommand"] = (
                port_forward(worker.instance, FLOWER_PORT),
                f"run, then open http://localhost:{FLOWER_PORT}",
            )
        if broker:
            outputs["BrokerEndpoint"] = (
                f"{broker.host}:{broker.replication_group.attr_primary_end_point_port}",
                "Celery broker (TLS + AUTH)",
            )
        for name, (value, description) in outputs.items():
            cdk.CfnOutput(self, name, value=value, description=description)
