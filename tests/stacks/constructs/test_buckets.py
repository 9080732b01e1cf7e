"""Buckets: private, SSL-only, encrypted, logged.

stacks/constructs/buckets.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.constructs.buckets import Buckets

from ..infra_support import bare_stack

DESTROY = cdk.RemovalPolicy.DESTROY


@pytest.mark.parametrize(("policy", "auto_delete"), [(DESTROY, True), (cdk.RemovalPolicy.RETAIN, False)])
def test_buckets_private_ssl_encrypted_logged(policy, auto_delete):
    stack = bare_stack()
    buckets = Buckets(stack, "B", removal_policy=policy)
    t = Template.from_stack(stack)
    all_buckets = t.find_resources("AWS::S3::Bucket")
    assert len(all_buckets) == 4
    access_logs = stack.resolve(buckets.access_logs.bucket_name)
    for logical_id, bucket in all_buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        )
        assert (
            props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
                "SSEAlgorithm"
            ]
            == "AES256"
        )
        assert bucket["DeletionPolicy"] == ("Delete" if auto_delete else "Retain")
        if {"Ref": logical_id} != access_logs:
            assert props["LoggingConfiguration"]["DestinationBucketName"] == access_logs
    for policy_doc in t.find_resources("AWS::S3::BucketPolicy").values():
        statements = policy_doc["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
        )
    t.resource_count_is("Custom::S3AutoDeleteObjects", 4 if auto_delete else 0)
