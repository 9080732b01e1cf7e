"""The deployment unit: the whole Airflow 3 cluster and the EMR pipeline resources of one stage."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from airflow_assets.dags.emr_pipeline.variable import EmrPipelineVariable
from stacks.config import REPO_ROOT, DeploymentConfig
from stacks.connection_budget import check_connection_budget
from stacks.constructs.airflow_node import AirflowNode, ClusterEnvironment
from stacks.constructs.broker import Broker
from stacks.constructs.buckets import Buckets
from stacks.constructs.database import CA_BUNDLE_PATH, CA_BUNDLE_URL, MetadataDatabase
from stacks.constructs.dns import ClusterDns
from stacks.constructs.emr_network import EmrSecurityGroups
from stacks.constructs.emr_roles import EmrRoles
from stacks.constructs.mail import Mail
from stacks.constructs.network import API_SERVER_PORT, FLOWER_PORT, Network
from stacks.constructs.node_role import STACK_TAG_KEY, AirflowNodeRole, cluster_tags
from stacks.constructs.s3_access import s3_read, s3_write
from stacks.constructs.secrets import AirflowSecrets
from stacks.constructs.shared_fs import MOUNT_POINT, SharedFileSystem
from stacks.constructs.uploads import ASSET_EXCLUDES, RepoUploads
from stacks.outputs import add_output
from stacks.s3_layout import EMR_STEPS_PREFIX, INPUT_KEY, PipelineUris
from stacks.start_order import STARTS_AFTER

AIRFLOW_ASSETS_DIR = REPO_ROOT / "airflow_assets"
EMR_STEPS_DIR = REPO_ROOT / "emr_steps"


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
            dataset_key=INPUT_KEY,
            asset_bucket=assets.bucket,
            removal_policy=removal,
        )

        node_roles = self._node_roles(secrets, database, broker, uris, emr_roles, assets, mail, shared_fs)

        self.emr_pipeline = self._emr_pipeline(network, emr_sgs, emr_roles, uris)
        pipeline_json = self.to_json_string(self.emr_pipeline.to_dict())
        environment = ClusterEnvironment(
            stage=config.stage,
            region=config.region,
            executor=config.executor,
            scheduler_count=config.scheduler_count,
            api_server_workers=config.api_server_workers,
            database=database,
            broker=broker,
            secrets=secrets,
            remote_log_uri=uris.airflow_logs,
            emr_pipeline_json=pipeline_json,
        )
        nodes = self._nodes(network, node_roles, assets, shared_fs, environment)
        nodes["api-server"].add_port_forward_output(
            "UiPortForwardCommand",
            port=API_SERVER_PORT,
            description=f"run, then open http://localhost:{API_SERVER_PORT} (user admin)",
        )
        if "worker" in nodes:
            nodes["worker"].add_port_forward_output(
                "FlowerPortForwardCommand",
                port=FLOWER_PORT,
                description=f"run, then open http://localhost:{FLOWER_PORT}",
            )
        add_output(self, "InputUri", value=uris.input, description="CSV read by the EMR pipeline")
        add_output(self, "OutputUri", value=uris.output, description="Parquet written by the EMR pipeline")
        add_output(
            self, "EmrPipelineVariable", value=pipeline_json, description="value of the Airflow Variable emr_pipeline"
        )

    def _node_roles(
        self,
        secrets: AirflowSecrets,
        database: MetadataDatabase,
        broker: Broker | None,
        uris: PipelineUris,
        emr_roles: EmrRoles,
        assets: s3_assets.Asset,
        mail: Mail,
        shared_fs: SharedFileSystem,
    ) -> dict[str, AirflowNodeRole]:
        """The IAM role of each node role, with what it may read, write and start."""
        config = self.config
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
        return node_roles

    def _emr_pipeline(
        self, network: Network, emr_sgs: EmrSecurityGroups, emr_roles: EmrRoles, uris: PipelineUris
    ) -> EmrPipelineVariable:
        """The Airflow Variable emr_pipeline (contracts §1) the scheduler node stores."""
        config = self.config
        return EmrPipelineVariable(
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

    def _nodes(
        self,
        network: Network,
        node_roles: dict[str, AirflowNodeRole],
        assets: s3_assets.Asset,
        shared_fs: SharedFileSystem,
        environment: ClusterEnvironment,
    ) -> dict[str, AirflowNode]:
        """The nodes by role, in creation order, each starting after the nodes STARTS_AFTER names."""
        config = self.config

        def node(
            role_name: str,
            construct_id: str,
            instance_type: str,
            api_server_host: str,
            extra_sgs: Sequence[ec2.ISecurityGroup],
        ) -> AirflowNode:
            return AirflowNode(
                self,
                construct_id,
                role_name=role_name,
                vpc=network.vpc,
                subnets=network.airflow_node_subnets(role_name, spread_schedulers=config.is_prod),
                security_groups=[network.airflow_nodes_sg, *extra_sgs],
                instance_type=instance_type,
                iam_role=node_roles[role_name].role,
                assets=assets,
                environment=environment,
                api_server_host=api_server_host,
                ca_bundles={CA_BUNDLE_PATH: CA_BUNDLE_URL},
                fstab_line=shared_fs.fstab_line,
                mount_point=MOUNT_POINT,
                termination_protection=config.is_prod,
            )

        ui_sgs = [network.ui_access_sg(config.allowed_ui_cidr)] if config.allowed_ui_cidr else []
        dns = ClusterDns(self, "Dns", vpc=network.vpc)
        # The scheduler node migrates the metadata DB, so it is created first; the api-server and the
        # worker start once it has passed its health check (STARTS_AFTER). They find the api-server by name.
        nodes = {"scheduler": node("scheduler", "Scheduler", config.scheduler_instance_type, dns.api_server_host, [])}
        nodes["api-server"] = node("api-server", "ApiServer", config.api_server_instance_type, "127.0.0.1", ui_sgs)
        dns.point_api_server_at(nodes["api-server"].instance)
        if config.uses_celery:
            nodes["worker"] = node("worker", "Worker", config.worker_instance_type, dns.api_server_host, [])
        for role, member in nodes.items():
            for before in STARTS_AFTER[role]:
                member.node.add_dependency(nodes[before])
        # Fail synthesis, not the first busy hour, when the nodes' pools can outgrow the database.
        check_connection_budget(
            config.db_instance_type, [member.env for member in nodes.values()], is_unresolved=cdk.Token.is_unresolved
        )
        # A node boots only when it can mount the file system and its whole IAM policy is in place.
        for role, member in nodes.items():
            member.node.add_dependency(shared_fs.file_system.mount_targets_available, node_roles[role].policy)
        return nodes
