"""The lake under test: a local directory or a prefix on the loopback S3 server.

Tests that hold for both locations take the ``lake`` fixture (parametrised
over ``disk`` and ``s3``) and look at the stored objects through this class,
which reads them with the filesystem or boto3, never through the code under test.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs

from esms_analytics.store import CloudStore, LakeStore, open_store

from .s3 import REGION, S3Server


@dataclass
class Lake:
    """Where a test's lake lives, and raw access to its objects."""

    kind: str
    location: str
    options: dict[str, str] | None = None
    root: Path | None = None
    s3: S3Server | None = None
    bucket: str = ""
    prefix: str = ""

    @classmethod
    def on_disk(cls, root: Path) -> Lake:
        return cls("disk", str(root), root=root)

    @classmethod
    def on_s3(cls, s3: S3Server, bucket: str, prefix: str = "lake", **options: str) -> Lake:
        return cls(
            "s3",
            f"s3://{bucket}/{prefix}",
            options=s3.storage_options(**options),
            s3=s3,
            bucket=bucket,
            prefix=prefix,
        )

    def __str__(self) -> str:
        return self.location

    def store(self, **options: Any) -> LakeStore:
        if self.kind == "s3":
            return CloudStore(self.location, storage_options=self.options, **options)
        return open_store(self.location)

    def _client(self) -> Any:
        assert self.s3 is not None
        return self.s3.client()

    def objects(self, pattern: str = "*") -> list[str]:
        """Every stored object's key under the lake's root, matching ``pattern``."""
        if self.kind == "disk":
            assert self.root is not None
            found = [
                path.relative_to(self.root).as_posix()
                for path in self.root.rglob("*")
                if path.is_file()
            ]
        else:
            found = []
            pages = self._client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
                found += [item["Key"][len(self.prefix) + 1 :] for item in page.get("Contents", [])]
        return sorted(key for key in found if fnmatch.fnmatch(key, pattern))

    def read(self, key: str) -> bytes:
        if self.kind == "disk":
            assert self.root is not None
            return (self.root / key).read_bytes()
        answer = self._client().get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        return bytes(answer["Body"].read())

    def write(self, key: str, data: bytes) -> None:
        if self.kind == "disk":
            assert self.root is not None
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)
        else:
            self._client().put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        if self.kind == "disk":
            assert self.root is not None
            (self.root / key).unlink()
        else:
            self._client().delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")

    def version(self, key: str) -> object:
        """Something that changes whenever the object is written again."""
        if self.kind == "disk":
            assert self.root is not None
            stat = (self.root / key).stat()
            return (stat.st_ino, stat.st_mtime_ns)
        # S3 times have one-second steps: tag the object, which any rewrite drops.
        full = f"{self.prefix}/{key}"
        client = self._client()
        metadata = client.head_object(Bucket=self.bucket, Key=full)["Metadata"]
        if "tag" not in metadata:
            client.copy_object(
                Bucket=self.bucket,
                Key=full,
                CopySource={"Bucket": self.bucket, "Key": full},
                Metadata={"tag": os.urandom(8).hex()},
                MetadataDirective="REPLACE",
            )
            metadata = client.head_object(Bucket=self.bucket, Key=full)["Metadata"]
        return metadata["tag"]

    def dataset(self) -> ds.Dataset:
        """The ``sms`` tree as a pyarrow dataset (what DuckDB is handed for S3)."""
        if self.kind == "disk":
            assert self.root is not None
            return ds.dataset(self.root / "sms", format="parquet", partitioning="hive")
        assert self.s3 is not None
        filesystem = pyarrow.fs.S3FileSystem(
            endpoint_override=self.s3.endpoint,
            scheme="http",
            access_key=self.s3.access_key,
            secret_key=self.s3.secret_key,
            region=REGION,
        )
        return ds.dataset(
            f"{self.bucket}/{self.prefix}/sms",
            filesystem=filesystem,
            format="parquet",
            partitioning="hive",
        )
