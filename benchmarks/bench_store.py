"""Sync into an S3 server on loopback against sync into local disk, in the same run.

The simulator and the S3 server (moto) each run in their own process, as the
real service and a real store would; the sync runs in this process with the
same workers and the same simulator history for both lakes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3

from benchmarks.bench_sync import NOW, _client, simulator_process
from esms_analytics.lake import read_lake
from esms_analytics.sync import sync

S3_SERVER = """
import logging, socket
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(port, flush=True)
server._thread.join()
"""
KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "aws_region": "us-east-1"}


@contextmanager
def s3_process() -> Iterator[str]:
    """A moto S3 server in a child process; yields its endpoint."""
    process = subprocess.Popen([sys.executable, "-c", S3_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def one_sync(base_url: str, lake: str, days: int, workers: int, options: Any) -> float:
    with _client(base_url) as client:
        start = time.perf_counter()
        report = sync(
            lake,
            NOW.date() - timedelta(days=days),
            NOW.date() - timedelta(days=1),
            sms_types=[2],
            client=client,
            workers=workers,
            progress=False,
            now=NOW,
            storage_options=options,
            probes=False,  # the same windows on every store
        )
        elapsed = time.perf_counter() - start
    assert report.complete, report.summary()
    assert read_lake(lake, storage_options=options).collect().height == report.rows
    return elapsed


def run(
    days: int = 30,
    rows_per_day: int = 5000,
    latency: float = 0.1,
    workers: int = 4,
    repeats: int = 5,
) -> dict[str, Any]:
    """Median seconds of a full sync into local disk and into S3, alternating runs."""
    disk, cloud = [], []
    with simulator_process(rows_per_day, latency) as base_url, s3_process() as endpoint:
        options = {**KEYS, "aws_endpoint_url": endpoint, "aws_allow_http": "true"}
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        ).create_bucket(Bucket="bench-lakes")
        with tempfile.TemporaryDirectory() as scratch:
            one_sync(base_url, str(Path(scratch) / "warm"), days, workers, None)
            for run_number in range(repeats):
                disk.append(
                    one_sync(base_url, str(Path(scratch) / f"{run_number}"), days, workers, None)
                )
                lake = f"s3://bench-lakes/{uuid.uuid4().hex}"
                cloud.append(one_sync(base_url, lake, days, workers, options))
    disk_median, cloud_median = sorted(disk)[len(disk) // 2], sorted(cloud)[len(cloud) // 2]
    return {
        "days": days,
        "rows_per_day": rows_per_day,
        "latency": latency,
        "workers": workers,
        "disk": disk,
        "s3": cloud,
        "disk_median": disk_median,
        "s3_median": cloud_median,
        "ratio": cloud_median / disk_median,
    }
