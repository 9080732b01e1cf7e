"""A local directory mirror of emulated S3 prefixes, synchronised around each EMR step.

Before a step: the local copy of every referenced location is made equal to S3 (download what is
new or changed, delete what S3 no longer has). After the step: whatever the step created, changed
or deleted under those locations is applied back to S3, so S3 then shows what EMRFS would.
Every S3 call is one of EMRFS's (`rehearsal.aws.emrfs`), made with the client it is given: the
step runner hands it one signed as the cluster's instance-profile role, so IAM decides each call.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from rehearsal.aws import emrfs
from rehearsal.aws.emrfs import S3Call
from rehearsal.aws.emrfs_writes import Written
from rehearsal.aws.iam_gate import DENIAL_HEADER
from rehearsal.aws.s3_uri import S3Uri

# Hadoop's local file system writes `.name.crc` checksum side files; S3 (EMRFS) never has them.
_CHECKSUM_SUFFIX = ".crc"
_DIRECTORY_MARKER_SUFFIXES = ("/", "_$folder$")

FileState = tuple[int, int, int]  # size, mtime_ns, inode
Snapshot = dict[tuple[str, str], FileState]  # (bucket, key) -> state


class MirrorConflictError(RuntimeError):
    """S3 holds both an object `a` and objects under `a/`, which a local file system cannot mirror."""


class EmrfsError(RuntimeError):
    """An S3 call of EMRFS failed (e.g. AccessDenied): the step fails with this message, as on EMR."""


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

    def push(self, locations: Iterable[S3Uri], before: Snapshot, written: Iterable[Written] = ()) -> PushResult:
        """Upload files created or changed since `before`, delete objects whose files disappeared.

        `written` (the step's writes anywhere under the mirror, in order) adds what the end state
        cannot show: files written outside the locations, and files renamed or deleted during the step.
        """
        locations = list(locations)
        after = self.snapshot(locations)
        # In the order the step wrote them, so a pointer written last (the sort job's _LATEST) also
        # reaches S3 last and a reader never sees it before the files it names.
        changed = [
            item
            for item in sorted(after.items(), key=lambda item: (item[1][1], item[0]))
            if before.get(item[0]) != item[1]
        ]
        by_bucket: dict[str, list[str]] = {}
        for (bucket, key), _state in changed:
            by_bucket.setdefault(bucket, []).append(key)
        uploaded, deleted = self._replay_writes(written, {item[0] for item in changed}, before)
        for bucket, keys in by_bucket.items():
            directories, files = _new_directories(bucket, keys, locations, before), set(keys)
            for call in emrfs.write_tree(bucket, directories, keys):
                if call.operation == "PutObject" and call.key in files:
                    with (self.root / bucket / call.key).open("rb") as body:
                        self._send(call, Body=body)
                    uploaded.append(call.uri)
                else:
                    self._send(call, **({"Body": b""} if call.operation == "PutObject" else {}))
        for bucket, key in sorted(set(before) - set(after)):
            for call in emrfs.delete_file(bucket, key):
                self._send(call)
            deleted.append(f"s3://{bucket}/{key}")
        return PushResult(uploaded, deleted)

    def _replay_writes(
        self, written: Iterable[Written], pushed: set[tuple[str, str]], before: Snapshot
    ) -> tuple[list[str], list[str]]:
        """EMRFS's PUT of each written file the end state does not push; then DELETE if it is gone (renamed/deleted).

        Made before the end state's uploads, in the order written, so a pointer written last still lands last.
        """
        uploaded, deleted = [], []
        for item in written:
            parts = item.path.relative_to(self.root).parts
            if len(parts) < 2 or _is_checksum(item.path):
                continue
            bucket, key = parts[0], "/".join(parts[1:])
            if (bucket, key) in pushed:
                continue
            (call,) = emrfs.write_file(bucket, key)
            if item.body is None:
                self._send(call, Body=b"")
            else:
                with item.body.open("rb") as body:
                    self._send(call, Body=body)
            uploaded.append(call.uri)
            if not item.path.is_file() and (bucket, key) not in before:  # `before`'s gone files: push deletes them
                for call in emrfs.delete_file(bucket, key):
                    self._send(call)
                deleted.append(call.uri)
        return uploaded, deleted

    def snapshot(self, locations: Iterable[S3Uri]) -> Snapshot:
        snapshot: Snapshot = {}
        for location in locations:
            for key, path in self._local_files(location):
                if _is_checksum(path):
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
            self._download(location.bucket, key, path)
        _prune_empty_dirs(self.local_path(location), stop_at=bucket_root)

    def _remote_objects(self, location: S3Uri) -> dict[str, tuple[int, str]]:
        """What EMRFS finds at the location: the object its key names, else the directory under `key/`."""
        objects: dict[str, tuple[int, str]] = {}
        listing = S3Call("ListObjectsV2", location.bucket, "")
        if location.stem:
            status = emrfs.file_status(location.bucket, location.stem)
            head = self._send(status[0])
            if head is not None:
                objects[location.stem] = (head["ContentLength"], head["ETag"].strip('"'))
                if not location.key.endswith("/"):
                    return objects
            self._send(status[1])
            listing = status[2]
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=listing.bucket, Prefix=listing.key
            ):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if location.covers(key) and not key.endswith(_DIRECTORY_MARKER_SUFFIXES):
                        objects[key] = (item["Size"], item["ETag"].strip('"'))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return {}
            raise _emrfs_error(listing, exc) from None
        return objects

    def _download(self, bucket: str, key: str, path: Path) -> None:
        response = self._send(S3Call("GetObject", bucket, key))
        with path.open("wb") as handle:
            for chunk in response["Body"].iter_chunks(1 << 20):
                handle.write(chunk)

    def _send(self, call: S3Call, **extra: Any) -> Any:
        """Make one EMRFS call; a HEAD that finds nothing is None, any other error an EmrfsError."""
        method = {
            "HeadObject": self._client.head_object,
            "GetObject": self._client.get_object,
            "PutObject": self._client.put_object,
            "DeleteObject": self._client.delete_object,
        }[call.operation]
        try:
            return method(Bucket=call.bucket, Key=call.key, **extra)
        except ClientError as exc:
            if call.operation == "HeadObject" and exc.response.get("Error", {}).get("Code") in (
                "404",
                "NoSuchKey",
                "NoSuchBucket",
            ):
                return None
            raise _emrfs_error(call, exc) from None

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


def _is_checksum(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(_CHECKSUM_SUFFIX)


def _emrfs_error(call: S3Call, exc: ClientError) -> EmrfsError:
    metadata = exc.response.get("ResponseMetadata", {})
    error = exc.response.get("Error", {})
    # A HEAD's 403 has no body: the rehearsal's gate puts its denial in a header (iam_gate.DENIAL_HEADER).
    message = metadata.get("HTTPHeaders", {}).get(DENIAL_HEADER) or error.get("Message") or str(exc)
    code = "AccessDenied" if error.get("Code") in ("403", "AccessDenied") else error.get("Code", "?")
    return EmrfsError(f"{code}: EMRFS {call.operation} {call.uri}: {message}")


def _new_directories(bucket: str, keys: list[str], locations: list[S3Uri], before: Snapshot) -> list[str]:
    """Directories (parents first) that the files `keys` need and S3 did not have: EMRFS's mkdirs creates them.

    Only directories at or below a directory location the step names; an object location's folder is
    not the step's to create.
    """
    existing = {key for (b, key) in before if b == bucket}
    found: dict[str, None] = {}
    for key in keys:
        for location in locations:
            if location.bucket != bucket or not location.stem or key == location.stem or not location.covers(key):
                continue
            parts = key[len(location.stem) + 1 :].split("/")[:-1]
            directories = [location.stem] + [f"{location.stem}/{'/'.join(parts[: n + 1])}" for n in range(len(parts))]
            for directory in directories:
                if not any(other.startswith(directory + "/") for other in existing):
                    found.setdefault(directory, None)
    return sorted(found, key=lambda directory: (directory.count("/"), directory))


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
