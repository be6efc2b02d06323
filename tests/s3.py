"""A real S3 server on loopback (moto), for the object-store lake tests.

The server speaks the S3 HTTP protocol and enforces conditional writes
(``If-None-Match``, ``If-Match``). It accepts any signature until
:meth:`S3Server.enforcing_credentials` turns its IAM checks on; the keys the
tests use belong to an IAM user allowed everything on S3, so they keep working.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import requests
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class S3Server:
    """A moto S3 server on 127.0.0.1 and the IAM keys that may use it."""

    server: ThreadedMotoServer
    port: int
    access_key: str = ""
    secret_key: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key or "setup",
            aws_secret_access_key=self.secret_key or "setup",
            region_name=REGION,
        )

    def storage_options(self, endpoint: str | None = None, **overrides: str) -> dict[str, str]:
        """What obstore and Polars need to reach the server."""
        return {
            "aws_endpoint_url": endpoint or self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": REGION,
            "aws_allow_http": "true",
            **overrides,
        }

    def new_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix`` with its bytes, read with boto3."""
        client = self.client()
        found = {}
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
        for page in pages:
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
                found[item["Key"]] = body
        return found

    @contextlib.contextmanager
    def enforcing_credentials(self) -> Iterator[None]:
        """Check every request's signature and permissions while the block runs."""
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        try:
            yield
        finally:
            requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


def start_s3_server() -> S3Server:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    s3 = S3Server(server, port)
    iam = boto3.client(
        "iam",
        endpoint_url=s3.endpoint,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
        region_name=REGION,
    )
    iam.create_user(UserName="lake-writer")
    iam.put_user_policy(UserName="lake-writer", PolicyName="s3", PolicyDocument=POLICY)
    key = iam.create_access_key(UserName="lake-writer")["AccessKey"]
    s3.access_key, s3.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
    return s3
