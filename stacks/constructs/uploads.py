"""Repo files copied into the buckets at deploy time: emr_steps/ and the sample dataset."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct, IConstruct

from stacks.cfn import typed_child
from stacks.nag import (
    LOG_GROUP_DEFAULT_ENCRYPTION,
    acknowledge,
    acknowledge_cdk_handler,
    acknowledge_checkov,
    wildcard_resource_finding,
)

ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache"]
HANDLER = (
    "aws-cdk-lib's BucketDeployment handler (runs only during deployment) copying repo files from the CDK asset bucket"
)


class RepoUploads(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        emr_steps_dir: Path,
        code_bucket: s3.IBucket,
        code_prefix: str,
        dataset: Path | None,
        data_bucket: s3.IBucket,
        dataset_key: str,
        asset_bucket: s3.IBucket,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        """`dataset` is uploaded as `dataset_key` whatever the local file is called (the pipeline reads that key);
        `asset_bucket`: the CDK bootstrap asset bucket the handler reads from (any asset's `.bucket`)."""
        super().__init__(scope, construct_id)
        # prune=True makes the handler run `aws s3 sync --delete`: every object under the prefix that is
        # not in this deploy's asset is deleted. That is right only where the stack alone writes.
        uploads = [
            s3deploy.BucketDeployment(
                self,
                "EmrSteps",
                sources=[s3deploy.Source.asset(str(emr_steps_dir), exclude=ASSET_EXCLUDES)],
                destination_bucket=code_bucket,
                destination_key_prefix=code_prefix,
                # The code prefix is the stack's own (the EMR job only reads it): a step file removed
                # from the repo must not linger where a later release could still run it.
                prune=True,
            )
        ]
        if dataset is not None:
            dataset_prefix, slash, dataset_name = dataset_key.rpartition("/")
            # BucketDeployment uploads each file under its own name, so the asset is a directory holding only
            # the dataset, renamed to the key's last part. The asset is copied into the cloud assembly when the
            # deployment binds its source (in its constructor): the staging directory is not needed after that.
            with tempfile.TemporaryDirectory(prefix="dataset-") as staging:
                shutil.copyfile(dataset, Path(staging) / dataset_name)
                uploads.append(
                    s3deploy.BucketDeployment(
                        self,
                        "Dataset",
                        sources=[s3deploy.Source.asset(staging)],
                        destination_bucket=data_bucket,
                        destination_key_prefix=dataset_prefix + slash,
                        # The input prefix is where users put their own CSVs: a deploy only adds or
                        # replaces the sample and never deletes what else lies there.
                        prune=False,
                    )
                )
        stack = cdk.Stack.of(self)
        handler = next(
            child for child in stack.node.children if child.node.id.startswith("Custom::CDKBucketDeployment")
        )
        # aws-cdk-lib retains the handler's log group by default; a destroyable stage must leave nothing
        # behind, and the group must outlive the uploads, whose deletion still invokes the handler.
        log_group = typed_child(handler, "LogGroup", logs.LogGroup)
        log_group.apply_removal_policy(removal_policy)
        acknowledge_checkov(log_group, "CKV_AWS_158", "output of the upload handler: " + LOG_GROUP_DEFAULT_ENCRYPTION)
        for upload in uploads:
            upload.node.find_child("CustomResource").node.add_dependency(log_group)
        self._acknowledge(handler, asset_bucket, [code_bucket] + ([data_bucket] if dataset is not None else []))

    @staticmethod
    def _acknowledge(handler: IConstruct, asset_bucket: s3.IBucket, destinations: list[s3.IBucket]) -> None:
        acknowledge(
            handler,
            "AwsSolutions-L1",
            HANDLER + "; its runtime is pinned by aws-cdk-lib together with its bundled AWS CLI layer",
        )
        acknowledge_cdk_handler(handler, HANDLER)
        acknowledge_checkov(
            handler,
            "CKV_AWS_173",
            HANDLER
            + "; its environment holds only aws-cdk-lib's settings (no secret), which Lambda encrypts at rest with its own key",
        )
        role = handler.node.find_child("ServiceRole")
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            HANDLER + "; the AWS managed policy only lets it write its own CloudWatch logs",
        )
        policy = role.node.find_child("DefaultPolicy")
        for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Action::{action}]",
                HANDLER + "; it syncs whole destination prefixes (and prunes the code prefix)",
            )
        acknowledge(
            policy,
            wildcard_resource_finding(policy, f"{asset_bucket.bucket_arn}/*"),
            HANDLER + "; it reads the staged zip from the CDK asset bucket",
        )
        for bucket in destinations:
            acknowledge(
                policy,
                wildcard_resource_finding(policy, f"{bucket.bucket_arn}/*"),
                HANDLER + "; it writes the uploaded files under their repo names",
            )
