"""EMRFS's S3 request pattern: the one definition the local EMR's S3 mirror makes and the IAM tests check.

EMRFS (EMR's s3:// Hadoop file system) addresses S3 like a directory tree. To learn what a path
is (Hadoop's getFileStatus) it HEADs the key, then the `<key>_$folder$` marker, then lists
`<key>/`; it reads a file with GET. mkdirs of a directory that does not exist yet PUTs a
`<dir>_$folder$` marker; the rehearsal's EMRFS deletes that marker again once the directory's
files are written, so S3 ends up holding exactly what Spark wrote (the pipeline's readers and
tests see no markers either way). Every call is signed with the cluster's instance-profile role,
so each is authorised by the IAM gate like on EMR.
"""

from __future__ import annotations

from dataclasses import dataclass

from rehearsal.aws.iam_gate import s3_requests
from rehearsal.aws.iam_policy import Request

FOLDER_MARKER_SUFFIX = "_$folder$"


@dataclass(frozen=True)
class S3Call:
    """One S3 API call EMRFS makes: `key` is the object key, or the listing's Prefix for ListObjectsV2."""

    operation: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def iam_requests(self) -> list[Request]:
        """What AWS authorises for this call (the gate's mapping)."""
        if self.operation == "ListObjectsV2":
            return s3_requests(self.operation, self.bucket, prefix=self.key)
        return s3_requests(self.operation, self.bucket, self.key)


def marker(directory: str) -> str:
    return directory + FOLDER_MARKER_SUFFIX


def file_status(bucket: str, key: str) -> list[S3Call]:
    """getFileStatus(key), in order; EMRFS stops at the first that finds something."""
    return [
        S3Call("HeadObject", bucket, key),
        S3Call("HeadObject", bucket, marker(key)),
        S3Call("ListObjectsV2", bucket, key + "/"),
    ]


def read_file(bucket: str, key: str) -> list[S3Call]:
    """Open and read one file: its status (the HEAD finds it), then GET."""
    return [file_status(bucket, key)[0], S3Call("GetObject", bucket, key)]


def make_directory(bucket: str, directory: str) -> list[S3Call]:
    """mkdirs of a directory S3 does not have yet: its `_$folder$` marker."""
    return [S3Call("PutObject", bucket, marker(directory))]


def write_file(bucket: str, key: str) -> list[S3Call]:
    return [S3Call("PutObject", bucket, key)]


def delete_file(bucket: str, key: str) -> list[S3Call]:
    return [S3Call("DeleteObject", bucket, key)]


def settle_directory(bucket: str, directory: str) -> list[S3Call]:
    """The directory now has files: its marker goes."""
    return [S3Call("DeleteObject", bucket, marker(directory))]


def write_tree(bucket: str, new_directories: list[str], files: list[str]) -> list[S3Call]:
    """Everything EMRFS sends to write `files` into `new_directories` (parents first) that S3 did not have."""
    calls = [call for directory in new_directories for call in make_directory(bucket, directory)]
    calls += [call for key in files for call in write_file(bucket, key)]
    calls += [call for directory in reversed(new_directories) for call in settle_directory(bucket, directory)]
    return calls
