"""RepoUploads: EMR steps and the sample dataset copied to their prefixes.

stacks/constructs/uploads.py, each construct built alone in a bare stack.
"""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.assertions import Template

from stacks.config import REPO_ROOT
from stacks.constructs.buckets import Buckets

from ..infra_support import bare_stack

DESTROY = cdk.RemovalPolicy.DESTROY


@pytest.mark.parametrize("with_dataset", [True, False])
def test_repo_uploads_copy_emr_steps_and_optionally_the_dataset(with_dataset):
    from stacks.constructs.uploads import RepoUploads

    stack = bare_stack()
    buckets = Buckets(stack, "B", removal_policy=DESTROY)
    asset = s3_assets.Asset(stack, "A", path=str(REPO_ROOT / "emr_steps"))
    RepoUploads(
        stack,
        "Up",
        emr_steps_dir=REPO_ROOT / "emr_steps",
        code_bucket=buckets.code,
        code_prefix="emr_steps/",
        dataset=REPO_ROOT / "sample_data" / "Mall_Customers.csv" if with_dataset else None,
        data_bucket=buckets.data,
        dataset_key="input/mall_customers/Mall_Customers.csv",
        asset_bucket=asset.bucket,
        removal_policy=DESTROY,
    )
    t = Template.from_stack(stack)
    deployments = t.find_resources("Custom::CDKBucketDeployment")
    prefixes = sorted(d["Properties"]["DestinationBucketKeyPrefix"] for d in deployments.values())
    assert prefixes == (["emr_steps/", "input/mall_customers/"] if with_dataset else ["emr_steps/"])
    ((log_group_id, log_group),) = [
        (k, v) for k, v in t.find_resources("AWS::Logs::LogGroup").items() if "CDKBucketDeployment" in k
    ]
    assert log_group["DeletionPolicy"] == "Delete"
    for deployment in deployments.values():
        assert log_group_id in deployment["DependsOn"]
