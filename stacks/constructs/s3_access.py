"""Explicit S3 read/write statements for one prefix: no action wildcards, no whole-bucket access."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam


@dataclass(frozen=True)
class S3Location:
    """An s3://bucket/key URI split into IAM resource ARNs."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        match = re.fullmatch(r"s3://([^/]+)/(.*)", uri)
        if not match:
            raise ValueError(f"not an s3:// URI: {uri}")
        return cls(match.group(1), match.group(2))

    @property
    def prefix(self) -> str:
        """The key itself when it is a prefix, else the 'directory' that holds the object."""
        if self.key.endswith("/") or not self.key:
            return self.key
        return self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""

    @property
    def bucket_arn(self) -> str:
        return f"arn:{cdk.Aws.PARTITION}:s3:::{self.bucket}"

    @property
    def objects_arn(self) -> str:
        return f"{self.bucket_arn}/{self.prefix}*"


def _bucket_level(location: S3Location) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[location.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [location.prefix, f"{location.prefix}*"]}},
        ),
        # EMRFS and the AWS SDKs ask for the bucket's region; s3:prefix does not apply to it.
        iam.PolicyStatement(actions=["s3:GetBucketLocation"], resources=[location.bucket_arn]),
    ]


def s3_read(uri: str) -> list[iam.PolicyStatement]:
    location = S3Location.parse(uri)
    return [iam.PolicyStatement(actions=["s3:GetObject"], resources=[location.objects_arn]), *_bucket_level(location)]


def s3_write(uri: str) -> list[iam.PolicyStatement]:
    location = S3Location.parse(uri)
    return [
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            resources=[location.objects_arn],
        ),
        *_bucket_level(location),
    ]
