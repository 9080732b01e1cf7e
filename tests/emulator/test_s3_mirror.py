"""The local S3 mirror: pull makes local == S3, push applies exactly what changed locally."""

from __future__ import annotations

import pytest

from rehearsal.aws.s3_mirror import MirrorConflictError, S3Mirror
from rehearsal.aws.s3_uri import S3Uri

BUCKET = "airflow-emr-data"


@pytest.fixture
def mirror(local_aws, tmp_path):
    return S3Mirror(local_aws.client("s3"), tmp_path / "mirror")


@pytest.fixture
def prefix(request):
    return f"mirror-tests/{request.node.name}/"


def put(aws, key, body=b"x"):
    aws.upload_bytes(body, f"s3://{BUCKET}/{key}")


def test_pull_downloads_the_prefix_and_removes_what_s3_no_longer_has(local_aws, mirror, prefix):
    put(local_aws, prefix + "out/a.parquet", b"a")
    put(local_aws, prefix + "out/sub/b.parquet", b"b")
    put(local_aws, prefix + "outside.txt")
    location = S3Uri(BUCKET, prefix + "out/")
    mirror.pull([location])
    root = mirror.local_path(location)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "a.parquet", "sub/b.parquet",
    ]
    assert not (root.parent / "outside.txt").exists()

    local_aws.client("s3").delete_object(Bucket=BUCKET, Key=prefix + "out/sub/b.parquet")
    put(local_aws, prefix + "out/a.parquet", b"changed")
    (root / ".a.parquet.crc").write_bytes(b"stale checksum")
    mirror.pull([location])
    assert sorted(p.name for p in root.rglob("*")) == ["a.parquet"]
    assert (root / "a.parquet").read_bytes() == b"changed"


def test_push_uploads_new_and_changed_files_and_deletes_removed_ones(local_aws, mirror, prefix):
    put(local_aws, prefix + "out/keep.txt", b"keep")
    put(local_aws, prefix + "out/replace.txt", b"old")
    put(local_aws, prefix + "out/remove.txt", b"gone")
    location = S3Uri(BUCKET, prefix + "out/")
    before = mirror.pull([location])
    root = mirror.local_path(location)

    (root / "remove.txt").unlink()
    (root / "replace.txt").unlink()
    (root / "replace.txt").write_bytes(b"new")
    (root / "part-0.parquet").write_bytes(b"p")
    (root / ".part-0.parquet.crc").write_bytes(b"crc")
    result = mirror.push([location], before)

    keys = local_aws.list_keys(f"s3://{BUCKET}/{prefix}")
    assert keys == [prefix + "out/keep.txt", prefix + "out/part-0.parquet", prefix + "out/replace.txt"]
    assert result.deleted == [f"s3://{BUCKET}/{prefix}out/remove.txt"]
    assert sorted(result.uploaded) == [f"s3://{BUCKET}/{prefix}out/part-0.parquet", f"s3://{BUCKET}/{prefix}out/replace.txt"]
    body = local_aws.client("s3").get_object(Bucket=BUCKET, Key=prefix + "out/replace.txt")["Body"].read()
    assert body == b"new"


def test_a_missing_prefix_is_not_created_locally(mirror, prefix):
    location = S3Uri(BUCKET, prefix + "not-yet/")
    assert mirror.pull([location]) == {}
    assert not mirror.local_path(location).exists()
    assert mirror.to_local(location).endswith("/not-yet/")


def test_a_single_object_location_mirrors_just_that_file(local_aws, mirror, prefix):
    put(local_aws, prefix + "data.csv", b"a,b\n")
    put(local_aws, prefix + "data.csv.bak", b"no")
    location = S3Uri(BUCKET, prefix + "data.csv")
    mirror.pull([location])
    assert mirror.local_path(location).read_bytes() == b"a,b\n"
    assert not mirror.local_path(S3Uri(BUCKET, prefix + "data.csv.bak")).exists()


def test_an_object_that_is_also_a_prefix_is_a_clear_error(local_aws, mirror, prefix):
    put(local_aws, prefix + "both")
    put(local_aws, prefix + "both/child")
    with pytest.raises(MirrorConflictError, match="both an object and a prefix"):
        mirror.pull([S3Uri(BUCKET, prefix)])


def test_push_uploads_in_the_order_the_step_wrote_the_files(local_aws, tmp_path, prefix):
    import os

    uploads = []

    class RecordingClient:
        def __init__(self, client):
            self._client = client

        def upload_file(self, path, bucket, key):
            uploads.append(key)
            return self._client.upload_file(path, bucket, key)

        def __getattr__(self, name):
            return getattr(self._client, name)

    mirror = S3Mirror(RecordingClient(local_aws.client("s3")), tmp_path / "mirror")
    location = S3Uri(BUCKET, prefix + "out/")
    before = mirror.pull([location])
    root = mirror.local_path(location)
    (root / "runs" / "r1").mkdir(parents=True)
    for age, name in enumerate(["runs/r1/part-00000.parquet", "runs/r1/_SUCCESS", "_LATEST"]):
        (root / name).write_text(name)
        os.utime(root / name, ns=(1_000_000_000 * (age + 1),) * 2)
    mirror.push([location], before)

    assert uploads == [prefix + "out/runs/r1/part-00000.parquet", prefix + "out/runs/r1/_SUCCESS", prefix + "out/_LATEST"]
