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
        "a.parquet",
        "sub/b.parquet",
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
    assert sorted(result.uploaded) == [
        f"s3://{BUCKET}/{prefix}out/part-0.parquet",
        f"s3://{BUCKET}/{prefix}out/replace.txt",
    ]
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


class RecordingClient:
    """The mirror's S3 client, recording each call as (operation, key or listing prefix)."""

    def __init__(self, client):
        self._client = client
        self.calls = []

    def _record(self, operation, method):
        def call(**params):
            self.calls.append((operation, params.get("Key", params.get("Prefix"))))
            return method(**params)

        return call

    def __getattr__(self, name):
        operations = {
            "head_object": "HeadObject",
            "get_object": "GetObject",
            "put_object": "PutObject",
            "delete_object": "DeleteObject",
        }
        if name in operations:
            return self._record(operations[name], getattr(self._client, name))
        if name == "get_paginator":

            def paginator(operation):
                real = self._client.get_paginator(operation)
                recorder = self

                class Recording:
                    def paginate(self, **params):
                        recorder.calls.append(("ListObjectsV2", params["Prefix"]))
                        return real.paginate(**params)

                return Recording()

            return paginator
        return getattr(self._client, name)


def test_push_makes_emrfs_requests_and_uploads_in_the_order_the_step_wrote_the_files(local_aws, tmp_path, prefix):
    import os

    client = RecordingClient(local_aws.client("s3"))
    mirror = S3Mirror(client, tmp_path / "mirror")
    location = S3Uri(BUCKET, prefix + "out/")
    before = mirror.pull([location])
    out = prefix + "out"
    # getFileStatus of the directory: HEAD key, HEAD marker, list `key/`.
    assert client.calls == [("HeadObject", out), ("HeadObject", out + "_$folder$"), ("ListObjectsV2", out + "/")]
    client.calls.clear()
    root = mirror.local_path(location)
    (root / "runs" / "r1").mkdir(parents=True)
    for age, name in enumerate(["runs/r1/part-00000.parquet", "runs/r1/_SUCCESS", "_LATEST"]):
        (root / name).write_text(name)
        os.utime(root / name, ns=(1_000_000_000 * (age + 1),) * 2)
    mirror.push([location], before)

    # mkdirs puts a marker per new directory, parents first; the files follow in write order; the
    # markers go once their directories have files.
    assert client.calls == [
        ("PutObject", out + "_$folder$"),
        ("PutObject", out + "/runs_$folder$"),
        ("PutObject", out + "/runs/r1_$folder$"),
        ("PutObject", out + "/runs/r1/part-00000.parquet"),
        ("PutObject", out + "/runs/r1/_SUCCESS"),
        ("PutObject", out + "/_LATEST"),
        ("DeleteObject", out + "/runs/r1_$folder$"),
        ("DeleteObject", out + "/runs_$folder$"),
        ("DeleteObject", out + "_$folder$"),
    ]
    assert local_aws.list_keys(f"s3://{BUCKET}/{out}/") == [
        out + "/_LATEST",
        out + "/runs/r1/_SUCCESS",
        out + "/runs/r1/part-00000.parquet",
    ]


# --- with the EMR instance role's key, as the step runner uses it ------------------------------------


def test_a_write_the_instance_role_may_not_make_is_access_denied_naming_principal_action_resource(local_aws, tmp_path):
    from rehearsal.aws.local_aws import EMR_INSTANCE_ACCESS_KEY
    from rehearsal.aws.s3_mirror import EmrfsError

    mirror = S3Mirror(local_aws.client("s3", access_key=EMR_INSTANCE_ACCESS_KEY), tmp_path / "instance")
    input_uri = local_aws.pipeline_config["input_uri"]
    folder = S3Uri.parse(input_uri.rsplit("/", 1)[0] + "/")
    before = mirror.pull([folder])  # the steps may read the input's folder (EMRFS's HEADs and listing)
    assert mirror.local_path(S3Uri.parse(input_uri)).is_file()
    (mirror.local_path(folder) / "extra.csv").write_text("x")
    with pytest.raises(EmrfsError) as denied:
        mirror.push([folder], before)
    resource = f"arn:aws:s3:::{folder.bucket}/{folder.key}extra.csv"
    principal = f"arn:aws:sts::{local_aws.account_id}:assumed-role/AirflowEmr-Ec2Role/rehearsal-emr-step"
    assert f"User: {principal} is not authorized to perform: s3:PutObject on resource: {resource}" in str(denied.value)
    assert {"principal": principal, "action": "s3:PutObject", "resource": resource} in [
        {k: d[k] for k in ("principal", "action", "resource")} for d in local_aws.iam_report()["denied"]
    ]


def test_a_denied_head_is_named_too(local_aws, tmp_path, prefix):
    from rehearsal.aws.local_aws import EMR_INSTANCE_ACCESS_KEY
    from rehearsal.aws.s3_mirror import EmrfsError

    put(local_aws, prefix + "private.csv")
    mirror = S3Mirror(local_aws.client("s3", access_key=EMR_INSTANCE_ACCESS_KEY), tmp_path / "instance")
    with pytest.raises(
        EmrfsError,
        match=r"AccessDenied: EMRFS HeadObject .* is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::",
    ):
        mirror.pull([S3Uri(BUCKET, prefix + "private.csv")])
