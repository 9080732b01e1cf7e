"""s3:// URIs as (bucket, key) pairs."""

from __future__ import annotations

import re
from dataclasses import dataclass

# An s3:// (or EMRFS-era s3n:// / s3a://) URI inside an argument, up to a quote, whitespace,
# or a separator that cannot be part of a key in a command line (`,` splits --py-files lists).
S3_URI_PATTERN = re.compile(r"s3[an]?://[^\s'\",;]+")


@dataclass(frozen=True, order=True)
class S3Uri:
    bucket: str
    key: str  # may be "" (the whole bucket) and may end with "/" (a prefix)

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        match = re.fullmatch(r"s3[an]?://([^/]+)/?(.*)", uri)
        if not match or not match.group(1):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        return cls(match.group(1), match.group(2))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def stem(self) -> str:
        """The key without a trailing slash: the object itself or the 'directory' it names."""
        return self.key.rstrip("/")

    def covers(self, key: str) -> bool:
        """True if `key` is this object or lies under this prefix (directory semantics)."""
        return not self.stem or key == self.stem or key.startswith(self.stem + "/")
