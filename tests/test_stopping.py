"""Ctrl-C and SIGTERM: real signals to a real `esms-analytics` process at random moments."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from esms_analytics.lake import lake_lock, read_lake
from esms_analytics.manifest import Manifest
from esms_analytics.simulator import Faults, Simulator
from esms_analytics.sync import sync

from .conftest import NOW

START, END = NOW.date() - timedelta(days=9), NOW.date()
KEY = ["sms_type", "date", "reference_id", "phone"]
#: (signal, how many times): the cases each seeded trial draws from.
CASES = [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 2), (signal.SIGTERM, 2)]
TRIALS = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, Path]]:
    """A simulator slow enough to be caught mid-sync, and the lake a full sync makes of it."""
    reference = tmp_path_factory.mktemp("reference") / "lake"
    with Simulator(now=NOW, days=20, daily_volume=2500, faults=Faults(latency=0.02)) as sim:
        with sim.client() as client:
            sync(reference, START, END, client=client, progress=False, settle_days=0)
        yield sim, reference


def _command(sim: Simulator, lake: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "esms_analytics",
        "sync",
        "--lake",
        str(lake),
        "--from",
        str(START),
        "--to",
        str(END),
        "--base-url",
        sim.base_url,
        "--quiet",
        "--workers",
        "2",
        "--settle-days",
        "0",
        "--rate-limit",
        "0",
    ]


def _environment(sim: Simulator) -> dict[str, str]:
    return {**os.environ, "ESMS_API_KEY": sim.api_key, "ESMS_SECRET_KEY": sim.secret_key}


def _frame(lake: Path) -> pl.DataFrame:
    return read_lake(lake).collect().sort(KEY)


def _check_the_lake_is_whole(lake: Path, *, writes_finished: bool) -> None:
    """Readers see whole partitions only, and the manifest agrees with the files."""
    if not (lake / "_manifest.json").exists() and not (lake / "sms").exists():
        # Stopped before any window was stored: a new lake leaves nothing behind, or only
        # its lock when a second signal ended the process at once.
        assert not lake.exists() or [path.name for path in lake.iterdir()] == ["_sync.lock"]
        return
    _frame(lake)  # every file reads
    for path in lake.rglob("*"):
        hidden = any(part.startswith((".", "_")) for part in path.relative_to(lake).parts)
        if path.is_file() and not hidden:
            assert path.name == "part-0.parquet", path  # nothing half-written under a real name
    if writes_finished:
        assert not list(lake.rglob("*.tmp"))
    # The manifest and its journal (a stopped sync leaves the journal for the next one).
    entries = {key: entry.to_json() for key, entry in Manifest(lake).entries.items()}
    for entry in entries.values():
        file = lake / "sms" / f"sms_type={entry['sms_type']}" / f"date={entry['date']}"
        if entry["rows"]:
            assert pq.read_metadata(file / "part-0.parquet").num_rows == entry["rows"]
    if writes_finished:
        # A signal never separates a partition from its manifest entry.
        files = {f"{p.parent.parent.name[9:]}/{p.parent.name[5:]}" for p in lake.glob("sms/*/*/*")}
        assert files <= set(entries)
    with lake_lock(lake):  # released
        pass


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_signal_at_a_random_moment_stops_the_sync_and_a_rerun_completes_it(
    served: tuple[Simulator, Path], tmp_path: Path, trial: int
) -> None:
    sim, reference = served
    rng = random.Random(1400 + trial)
    stop_signal, times = CASES[trial % len(CASES)]
    lake = tmp_path / "lake"
    sim.reset_requests()
    process = subprocess.Popen(
        _command(sim, lake),
        env=_environment(sim),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not sim.requests and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.0))
        for _ in range(times):
            process.send_signal(stop_signal)
            time.sleep(rng.uniform(0.0, 0.05))
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + stop_signal, err
    assert "Traceback" not in err
    if times == 1:
        assert "run the same command again to resume" in err
        assert "windows stored by this run" in err
    else:  # the second signal quits at once, unless the first had already finished the job
        assert "stopped at once" in err or "run the same command again" in err
    _check_the_lake_is_whole(lake, writes_finished=times == 1)

    resumed = subprocess.run(
        _command(sim, lake), env=_environment(sim), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert_frame_equal(_frame(lake), _frame(reference))
    assert not list(lake.rglob("*.tmp"))


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_and_says_how_to_resume(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "esms_analytics",
            "demo",
            "--lake",
            str(tmp_path / "lake"),
            "--reports",
            str(tmp_path / "reports"),
            "--days",
            "30",
            "--daily-volume",
            "20000",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        while "syncing" not in process.stdout.readline():
            pass
        time.sleep(random.Random(14).uniform(0.2, 0.8))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err
    assert not (tmp_path / "reports").exists()
    _check_the_lake_is_whole(tmp_path / "lake", writes_finished=True)
