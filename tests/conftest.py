"""Shared fixtures: a real simulator on loopback and clients that never sleep for real."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from esms_analytics.client import EsmsClient, RetryPolicy
from esms_analytics.simulator import Simulator
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync

from .hostile import HostileServer
from .s3 import S3Server, start_s3_server

# Two cores shared by xdist workers, Spark and browsers: a deadline per example measures
# the machine's load, not the code. Timing targets live in benchmarks/.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

#: The frozen moment most tests run at: mid-afternoon, Vietnam time.
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=VIETNAM)
#: The week the HTML report tests cover; the lake also holds the week before, to compare.
REPORT_END = NOW.date() - timedelta(days=1)
REPORT_START = REPORT_END - timedelta(days=6)


class SleepRecorder:
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(now=NOW, days=20, daily_volume=60, seed=11) as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator, sleeps: SleepRecorder) -> Iterator[EsmsClient]:
    with sim.client(sleep=sleeps, timeout=5.0, retry=RetryPolicy(max_attempts=4)) as esms:
        yield esms


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on loopback for the whole session (one per xdist worker)."""
    server = start_s3_server()
    yield server
    server.server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.new_bucket()


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture(scope="session")
def report_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of two weeks: the one the HTML tests report on and the one before it."""
    path = tmp_path_factory.mktemp("report") / "lake"
    with Simulator(now=NOW, days=30, daily_volume=400, seed=5) as sim, sim.client() as client:
        sync(
            path,
            REPORT_START - timedelta(days=7),
            REPORT_END,
            client=client,
            progress=False,
            now=sim.clock.now(),
        )
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one local Spark session of the test run (tests using it: xdist group "spark").

    It also serves Spark Connect on a loopback port (:func:`spark_remote`), so a
    notebook kernel or a client session reaches this JVM instead of starting another.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("esms-analytics-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Test data is small: one task per shuffle, no adaptive re-planning, no progress bar.
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # The Spark Connect server ships in pyspark's jars; it starts with the session.
        .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
        .config("spark.connect.grpc.binding.address", "127.0.0.1")
        .config("spark.connect.grpc.binding.port", str(_free_loopback_port()))
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_remote(spark: Any) -> str:
    """The Spark Connect URL of the test run's Spark session, as ``SPARK_REMOTE`` takes it."""
    return f"sc://127.0.0.1:{spark.conf.get('spark.connect.grpc.binding.port')}"


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
