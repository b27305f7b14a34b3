"""Durable copies of the data root's published outputs on S3-compatible object storage.

The data root itself stays a POSIX folder (SQLite and DuckDB tables, atomic renames); on a cluster it is a
shared volume. What others need beyond one machine (split manifests, trained and exported models) is also
put under `uri`, keyed by its path relative to the data root, and can be fetched back anywhere.
Objects carry their sha256, so putting an unchanged file again uploads nothing. Credentials and the
endpoint come from the environment as boto3 reads them (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pydantic import Field

from whisper_assets.files import atomic_path
from whisper_assets.policy import Policy

SHA_KEY = "sha256"


class ObjectStoreSettings(Policy):
    """Where published outputs are copied: `s3://bucket/prefix`, or nothing (the default: local only)."""

    uri: str | None = Field(
        None, description="s3://bucket/prefix for manifests and models; none: local only."
    )
    endpoint_url: str | None = Field(
        None, description="An S3-compatible server (MinIO, Ceph); else AWS_ENDPOINT_URL."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Transfer:
    """What one put or get did: objects copied and objects already identical."""

    copied: int
    unchanged: int


class ObjectStore:
    """A bucket prefix mirroring paths under one local root."""

    def __init__(self, uri: str, root: Path, endpoint_url: str | None = None):
        import boto3  # the `team` extra; only needed when an object store is configured

        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"object store URI must look like s3://bucket/prefix, got {uri!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.root = root
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    @classmethod
    def from_settings(cls, settings: ObjectStoreSettings, root: Path) -> ObjectStore | None:
        return cls(settings.uri, root, settings.endpoint_url) if settings.uri else None

    def key(self, path: Path) -> str:
        relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def url(self, path: Path) -> str:
        return f"s3://{self.bucket}/{self.key(path)}"

    def _remote_sha(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)["Metadata"].get(SHA_KEY)
        except ClientError as error:
            if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def put(self, path: Path) -> Transfer:
        """Copy a file, or every file under a folder, unless the stored object already has its sha256."""
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        copied = 0
        for file in files:
            key, sha = self.key(file), _sha256(file)
            if self._remote_sha(key) == sha:
                continue
            self.client.upload_file(str(file), self.bucket, key, ExtraArgs={"Metadata": {SHA_KEY: sha}})
            copied += 1
        return Transfer(copied, len(files) - copied)

    def _objects(self, key_prefix: str) -> Iterator[dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def get(self, path: Path) -> Transfer:
        """Fetch the object at `path`, or every object under it, into the local root (written atomically)."""
        key = self.key(path)
        objects = [o for o in self._objects(key) if o["Key"] == key or o["Key"].startswith(key + "/")]
        if not objects:
            raise FileNotFoundError(f"nothing stored under s3://{self.bucket}/{key}")
        copied = 0
        for found in objects:
            relative = found["Key"].removeprefix(f"{self.prefix}/" if self.prefix else "")
            local = self.root / relative
            remote_sha = self._remote_sha(found["Key"])
            if local.exists() and remote_sha and _sha256(local) == remote_sha:
                continue
            with atomic_path(local) as tmp:
                self.client.download_file(self.bucket, found["Key"], str(tmp))
                if remote_sha and _sha256(tmp) != remote_sha:
                    raise OSError(f"s3://{self.bucket}/{found['Key']} does not match its recorded sha256")
            copied += 1
        return Transfer(copied, len(objects) - copied)
