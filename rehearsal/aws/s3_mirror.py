"""A local directory mirror of emulated S3 prefixes, synchronised around each EMR step.

Before a step: the local copy of every referenced location is made equal to S3 (download what is
new or changed, delete what S3 no longer has). After the step: whatever the step created, changed
or deleted under those locations is applied back to S3, so S3 then shows what EMRFS would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.aws.s3_uri import S3Uri

# Hadoop's local file system writes `.name.crc` checksum side files; S3 (EMRFS) never has them.
_CHECKSUM_SUFFIX = ".crc"
_DIRECTORY_MARKER_SUFFIXES = ("/", "_$folder$")

FileState = tuple[int, int, int]  # size, mtime_ns, inode
Snapshot = dict[tuple[str, str], FileState]  # (bucket, key) -> state


class MirrorConflictError(RuntimeError):
    """S3 holds both an object `a` and objects under `a/`, which a local file system cannot mirror."""


@dataclass(frozen=True)
class PushResult:
    uploaded: list[str]
    deleted: list[str]


class S3Mirror:
    def __init__(self, client: Any, root: Path):
        self._client = client
        self.root = root

    def local_path(self, location: S3Uri) -> Path:
        return self.root / location.bucket / location.stem if location.stem else self.root / location.bucket

    def to_local(self, location: S3Uri) -> str:
        """Local path text for an s3:// URI, keeping a trailing slash (directory intent)."""
        path = str(self.local_path(location))
        return path + "/" if location.key.endswith("/") or not location.stem else path

    def pull(self, locations: Iterable[S3Uri]) -> Snapshot:
        """Make the local mirror of each location equal to S3; return the resulting file snapshot."""
        locations = list(locations)
        for location in locations:
            self._pull_one(location)
        return self.snapshot(locations)

    def push(self, locations: Iterable[S3Uri], before: Snapshot) -> PushResult:
        """Upload files created or changed since `before`, delete objects whose files disappeared."""
        locations = list(locations)
        after = self.snapshot(locations)
        uploaded, deleted = [], []
        # In the order the step wrote them, so a pointer written last (the sort job's _LATEST) also
        # reaches S3 last and a reader never sees it before the files it names.
        for (bucket, key), state in sorted(after.items(), key=lambda item: (item[1][1], item[0])):
            if before.get((bucket, key)) != state:
                self._client.upload_file(str(self.root / bucket / key), bucket, key)
                uploaded.append(f"s3://{bucket}/{key}")
        gone: dict[str, list[str]] = {}
        for bucket, key in sorted(set(before) - set(after)):
            gone.setdefault(bucket, []).append(key)
            deleted.append(f"s3://{bucket}/{key}")
        for bucket, keys in gone.items():
            for start in range(0, len(keys), 1000):
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                self._client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return PushResult(uploaded, deleted)

    def snapshot(self, locations: Iterable[S3Uri]) -> Snapshot:
        snapshot: Snapshot = {}
        for location in locations:
            for key, path in self._local_files(location):
                if path.name.startswith(".") and path.name.endswith(_CHECKSUM_SUFFIX):
                    continue
                stat = path.stat()
                snapshot[(location.bucket, key)] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        return snapshot

    def _pull_one(self, location: S3Uri) -> None:
        remote = self._remote_objects(location)
        bucket_root = self.root / location.bucket
        bucket_root.mkdir(parents=True, exist_ok=True)
        for key in remote:
            if any(other.startswith(key + "/") for other in remote):
                raise MirrorConflictError(
                    f"s3://{location.bucket}/{key} is both an object and a prefix of other objects"
                )
        local = dict(self._local_files(location))
        for key, path in local.items():
            if key not in remote:
                path.unlink()
        for key, (size, etag) in remote.items():
            path = bucket_root / key
            if key in local and path.is_file() and _same_content(path, size, etag):
                continue
            if path.is_dir():
                shutil.rmtree(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._client.download_file(location.bucket, key, str(path))
        _prune_empty_dirs(self.local_path(location), stop_at=bucket_root)

    def _remote_objects(self, location: S3Uri) -> dict[str, tuple[int, str]]:
        objects: dict[str, tuple[int, str]] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.stem):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if location.covers(key) and not key.endswith(_DIRECTORY_MARKER_SUFFIXES):
                        objects[key] = (item["Size"], item["ETag"].strip('"'))
        except self._client.exceptions.NoSuchBucket:
            return {}
        return objects

    def _local_files(self, location: S3Uri) -> list[tuple[str, Path]]:
        bucket_root = self.root / location.bucket
        base = self.local_path(location)
        if base.is_file():
            return [(base.relative_to(bucket_root).as_posix(), base)]
        if not base.is_dir():
            return []
        files = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                path = Path(dirpath) / name
                files.append((path.relative_to(bucket_root).as_posix(), path))
        return files


def _same_content(path: Path, size: int, etag: str) -> bool:
    if path.stat().st_size != size:
        return False
    if "-" in etag:  # multipart ETag is not an MD5 of the content: cannot tell, fetch again
        return False
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest() == etag


def _prune_empty_dirs(top: Path, *, stop_at: Path) -> None:
    """Remove empty directories at and below `top` (S3 has no empty directories), never `stop_at`."""
    if not top.is_dir():
        return
    for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
        path = Path(dirpath)
        if path != stop_at and not any(path.iterdir()):
            path.rmdir()
