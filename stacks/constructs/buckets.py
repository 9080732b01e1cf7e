"""S3 buckets: data (input CSV, Parquet output), logs (Airflow and EMR), code (EMR steps), access logs.

What goes under which prefix is stacks/s3_layout.py's."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.cfn import typed_child
from stacks.nag import LOG_GROUP_DEFAULT_ENCRYPTION, acknowledge_cdk_handler, acknowledge_checkov
from stacks.outputs import add_output


class Buckets(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: cdk.RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self._destroyable = removal_policy == cdk.RemovalPolicy.DESTROY
        self._removal_policy = removal_policy
        # cdk-nag S1 recognises a server access log target and does not ask it to log itself.
        self.access_logs = self._bucket("AccessLogs", access_logs=None)
        acknowledge_checkov(
            self.access_logs,
            "CKV_AWS_18",
            "this is the server access log target of the other buckets; logging it would log its own log deliveries",
        )
        self.data = self._bucket("Data", access_logs=self.access_logs)
        self.logs = self._bucket("Logs", access_logs=self.access_logs)
        self.code = self._bucket("Code", access_logs=self.access_logs)
        if self._destroyable:
            self._own_auto_delete_logs()
        add_output(self, "DataBucketName", value=self.data.bucket_name, description="input CSV and Parquet output")
        add_output(
            self,
            "LogsBucketName",
            value=self.logs.bucket_name,
            description="Airflow task logs (airflow/) and EMR logs (emr/)",
        )
        add_output(self, "CodeBucketName", value=self.code.bucket_name, description="EMR steps (emr_steps/)")

    def _own_auto_delete_logs(self) -> None:
        """Give aws-cdk-lib's auto-delete handler a log group that `cdk destroy` removes last.

        Otherwise Lambda creates /aws/lambda/<handler> itself while emptying the buckets during
        `cdk destroy`, and that log group outlives the stack.
        """
        stack = cdk.Stack.of(self)
        provider = stack.node.find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        handler = typed_child(provider, "Handler", cdk.CfnResource)
        log_group = logs.LogGroup(
            self,
            "AutoDeleteLogs",
            log_group_name=f"/aws/lambda/{handler.ref}",
            retention=logs.RetentionDays.ONE_WEEK,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        acknowledge_checkov(
            log_group, "CKV_AWS_158", "output of the bucket auto-delete handler: " + LOG_GROUP_DEFAULT_ENCRYPTION
        )
        acknowledge_cdk_handler(
            handler, "aws-cdk-lib's bucket auto-delete handler (runs only during `cdk destroy` of the dev stage)"
        )
        for bucket in (self.access_logs, self.data, self.logs, self.code):
            bucket.node.find_child("AutoDeleteObjectsCustomResource").node.add_dependency(log_group)

    def _bucket(self, construct_id: str, *, access_logs: s3.IBucket | None) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            construct_id,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=not self._destroyable,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id.lower()}/" if access_logs else None,
            removal_policy=self._removal_policy,
            auto_delete_objects=self._destroyable,
        )
        if self._destroyable:
            acknowledge_checkov(
                bucket,
                "CKV_AWS_21",
                "dev stage: `cdk destroy` empties and removes the bucket, so old versions would protect nothing; the prod stage is versioned",
            )
        return bucket
