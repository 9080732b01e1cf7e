"""Explicit S3 statements for one object or one prefix: no action wildcards, no whole-bucket access.

`s3_read` / `s3_write` serve clients that address objects by key (boto3, Airflow's S3 hooks).
`emrfs_read` / `emrfs_write` add what EMRFS (Hadoop's s3:// file system on EMR) does besides: it
treats a prefix as a directory, checks it with a HEAD on the key without its trailing slash, and
may write a `<dir>_$folder$` marker object next to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

OBJECT_WRITE_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
FOLDER_MARKER_SUFFIX = "_$folder$"


@dataclass(frozen=True)
class S3GrantScope:
    """An s3://bucket/key URI split into IAM resource ARNs."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3GrantScope:
        match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
        if not match:
            raise ValueError(
                f"not an s3://bucket/key URI (a bucket root is not a location the pipeline may own): {uri}"
            )
        return cls(match.group(1), match.group(2))

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/")

    @property
    def prefix(self) -> str:
        """The key itself when it is a prefix, else the 'directory' that holds the object."""
        if self.is_prefix:
            return self.key
        return self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""

    @property
    def bucket_arn(self) -> str:
        return f"arn:{cdk.Aws.PARTITION}:s3:::{self.bucket}"

    def object_arn(self, key: str) -> str:
        return f"{self.bucket_arn}/{key}"

    @property
    def objects_arn(self) -> str:
        """The object itself, or everything under the prefix."""
        return self.object_arn(self.key if not self.is_prefix else f"{self.prefix}*")

    @property
    def directory_keys(self) -> list[str]:
        """The keys EMRFS probes for the directory `prefix`: the key without its slash and its marker."""
        directory = self.prefix.rstrip("/")
        return [directory, directory + FOLDER_MARKER_SUFFIX] if directory else []


def as_prefix(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def _bucket_level(location: S3GrantScope) -> list[iam.PolicyStatement]:
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
    """Read one object (exactly that key) or every object under a prefix (URI ending in /)."""
    location = S3GrantScope.parse(uri)
    return [iam.PolicyStatement(actions=["s3:GetObject"], resources=[location.objects_arn]), *_bucket_level(location)]


def s3_write(uri: str) -> list[iam.PolicyStatement]:
    """Read, write and delete every object under the prefix `uri` (a trailing slash is implied)."""
    location = S3GrantScope.parse(as_prefix(uri))
    return [
        iam.PolicyStatement(actions=OBJECT_WRITE_ACTIONS, resources=[location.objects_arn]),
        *_bucket_level(location),
    ]


def emrfs_read(uri: str) -> list[iam.PolicyStatement]:
    """`s3_read`, plus the HEADs EMRFS makes on the directory holding it (Hive's table LOCATION)."""
    location = S3GrantScope.parse(uri)
    probes = [location.object_arn(key) for key in location.directory_keys]
    return [*s3_read(uri), *([iam.PolicyStatement(actions=["s3:GetObject"], resources=probes)] if probes else [])]


def emrfs_write(uri: str) -> list[iam.PolicyStatement]:
    """`s3_write` of the prefix, plus EMRFS's HEAD on the prefix without its slash and its `_$folder$` marker."""
    location = S3GrantScope.parse(as_prefix(uri))
    directory, marker = location.directory_keys
    return [
        *s3_write(uri),
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[location.object_arn(directory)]),
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources=[location.object_arn(marker)]
        ),
    ]
