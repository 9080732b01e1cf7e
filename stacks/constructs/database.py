"""Airflow metadata database: RDS MySQL 8.4, TLS only (clients verify it against the RDS CA bundle), reachable only from the Airflow nodes."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.cfn import cfn_resource
from stacks.constructs.secrets import AWS_MANAGED_KEY, NO_ROTATION
from stacks.nag import acknowledge, acknowledge_checkov
from stacks.outputs import add_output

# The major line only: RDS picks the region's current default minor at create time and auto minor
# upgrades keep it current; a pinned minor fails the create once RDS retires it.
# Check what a region offers: aws rds describe-db-engine-versions --engine mysql --engine-version 8.4 \
#   --region <region> --query 'DBEngineVersions[].[EngineVersion,Status]' --output text
ENGINE_MAJOR_VERSION = "8.4"
ENGINE_VERSION = rds.MysqlEngineVersion.of(ENGINE_MAJOR_VERSION, ENGINE_MAJOR_VERSION)
DATABASE_NAME = "airflow"
MASTER_USERNAME = "airflow_admin"
# A non-default port keeps drive-by scans for 3306 away (cdk-nag RDS11).
PORT = 3307
# AWS's documented bundle of the RDS root CAs of every commercial region, so neither a region change nor
# switching the instance's CA needs another bundle. Clients verify the server certificate with it.
CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
CA_BUNDLE_PATH = "/etc/pki/rds/global-bundle.pem"


class MetadataDatabase(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        clients: ec2.ISecurityGroup,
        instance_type: str,
        multi_az: bool,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        engine = rds.DatabaseInstanceEngine.mysql(version=ENGINE_VERSION)
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="Airflow metadata DB: TLS only, utf8mb4, explicit timestamp defaults",
            parameters={
                # RDS for MySQL 8.4 takes 1 (ON) here, not the word.
                "require_secure_transport": "1",
                "explicit_defaults_for_timestamp": "1",
                "character_set_server": "utf8mb4",
                "collation_server": "utf8mb4_0900_ai_ci",
            },
        )
        self.security_group = ec2.SecurityGroup(
            self, "Sg", vpc=vpc, description="Airflow metadata DB", allow_all_outbound=False
        )
        self.security_group.add_ingress_rule(clients, ec2.Port.tcp(PORT), "MySQL from the Airflow nodes")
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=engine,
            instance_type=ec2.InstanceType(instance_type),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            port=PORT,
            database_name=DATABASE_NAME,
            credentials=rds.Credentials.from_generated_secret(MASTER_USERNAME, exclude_characters="\"@/\\'%:?#&=+ "),
            parameter_group=parameters,
            storage_encrypted=True,
            allocated_storage=20,
            max_allocated_storage=100,
            storage_type=rds.StorageType.GP3,
            multi_az=multi_az,
            backup_retention=cdk.Duration.days(7 if multi_az else 1),
            deletion_protection=removal_policy != cdk.RemovalPolicy.DESTROY,
            removal_policy=removal_policy,
            iam_authentication=True,
            auto_minor_version_upgrade=True,
            # RDS creates export log groups outside CloudFormation; a destroyable stage must not leave them behind.
            cloudwatch_logs_exports=None if removal_policy == cdk.RemovalPolicy.DESTROY else ["error", "slowquery"],
        )
        # Credentials.from_generated_secret always gives the instance a secret; aws-cdk-lib types it optional.
        if self.instance.secret is None:
            raise TypeError(f"{self.instance.node.path} has no master user secret")
        self.secret: secretsmanager.ISecret = self.instance.secret
        # The CloudFormation schema data in aws-cdk-lib and cfn-lint lists full versions only, yet RDS accepts a
        # major version and picks its minor ("If a major version is specified but a minor version is not, Amazon
        # RDS defaults to a recent release of the major version"; cfn-lint issue #3849).
        major_only = "EngineVersion is the major line only; RDS chooses the region's current minor (see ENGINE_VERSION)"
        cdk.Validations.of(self.instance).acknowledge(
            cdk.Acknowledgment(id="CloudFormation-Validate::E9006", reason=major_only)
        )
        cfn_resource(self.instance).add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3691"]}})
        # instance.secret is the target attachment; the secret itself is the "Secret" child.
        acknowledge(self.instance.node.find_child("Secret"), "AwsSolutions-SMG4", NO_ROTATION)
        acknowledge_checkov(self.instance.node.find_child("Secret"), "CKV_AWS_149", AWS_MANAGED_KEY)
        acknowledge_checkov(
            self.instance,
            "CKV_AWS_118",
            "the metadata DB is watched through RDS's standard CloudWatch metrics (CPU, connections, memory, storage); "
            "OS-level enhanced monitoring would add an IAM role and log ingestion that nothing here reads",
        )
        if not multi_az:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS3",
                "dev stage: a single-AZ instance halves the cost; the prod stage is Multi-AZ",
            )
            acknowledge_checkov(
                self.instance,
                "CKV_AWS_157",
                "dev stage: a single-AZ instance halves the cost; the prod stage is Multi-AZ",
            )
        if removal_policy == cdk.RemovalPolicy.DESTROY:
            acknowledge(
                self.instance,
                "AwsSolutions-RDS10",
                "dev stage: `cdk destroy` must remove the database; the prod stage enables deletion protection",
            )
        add_output(
            self,
            "DbEndpoint",
            value=f"{self.host}:{self.instance.db_instance_endpoint_port}",
            description="Airflow metadata DB (TLS only)",
        )

    @property
    def host(self) -> str:
        return self.instance.db_instance_endpoint_address
