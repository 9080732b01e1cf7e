"""S3 grant scopes parsed from s3:// URIs.

stacks/constructs/s3_access.py.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("uri", "prefix", "objects"),
    [
        (
            "s3://b/input/mall_customers/Mall_Customers.csv",
            "input/mall_customers/",
            "input/mall_customers/Mall_Customers.csv",
        ),
        ("s3://b/output/x/", "output/x/", "output/x/*"),
        ("s3://b/top.csv", "", "top.csv"),
    ],
)
def test_s3_location_grants_an_object_exactly_and_a_prefix_with_its_contents(uri, prefix, objects):
    from stacks.constructs.s3_access import S3GrantScope

    location = S3GrantScope.parse(uri)
    assert location.bucket == "b" and location.prefix == prefix
    assert location.objects_arn.endswith(f":s3:::b/{objects}")


@pytest.mark.parametrize("uri", ["https://b/key", "s3://b/", "s3://b"])
def test_s3_location_rejects_other_schemes_and_bucket_roots(uri):
    from stacks.constructs.s3_access import S3GrantScope

    with pytest.raises(ValueError, match="not an s3://bucket/key URI"):
        S3GrantScope.parse(uri)
