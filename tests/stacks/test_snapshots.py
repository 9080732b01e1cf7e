"""Syrupy snapshots of every stack template variant.

Asset hashes are normalised before comparing: the airflow_assets/ and emr_steps/ bundles are
edited by other workstreams all the time, and their content is tested elsewhere; the snapshot
guards the infrastructure itself. Likewise the inlined requirements-airflow.txt is replaced by a
placeholder (whatever its content). Update after an intended change with:
    .venv/bin/pytest tests/stacks/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import re

import pytest
from syrupy.extensions.json import JSONSnapshotExtension

from .infra_support import VARIANTS

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
REQUIREMENTS_FILE = "/opt/airflow/requirements-airflow.txt"


def normalise(value):
    if isinstance(value, dict):
        return {
            key: {**item, "content": "<requirements-airflow.txt>"} if key == REQUIREMENTS_FILE else normalise(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        return ASSET_HASH.sub("<asset-hash>", value)
    return value


@pytest.fixture
def snapshot_json(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_template_snapshot(assemblies, variant, snapshot_json):
    assert normalise(assemblies[variant].template) == snapshot_json


def test_normalisation_hides_only_asset_hashes():
    digest = "a" * 64
    assert normalise({"S3Key": f"{digest}.zip", "Other": "abc", "List": [f"x/{digest}"]}) == {
        "S3Key": "<asset-hash>.zip",
        "Other": "abc",
        "List": ["x/<asset-hash>"],
    }
    assert normalise("b" * 63) == "b" * 63
    assert normalise({REQUIREMENTS_FILE: {"content": "x==1\n", "mode": "000644"}}) == {
        REQUIREMENTS_FILE: {"content": "<requirements-airflow.txt>", "mode": "000644"},
    }
