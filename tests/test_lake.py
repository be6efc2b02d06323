"""The lake and sync against the simulator: layout, engines, increments, crashes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import AuthError, ConfigError, CorruptPartitionError, LakeError, fetch_days
from esms_analytics.errors import LakeLockedError
from esms_analytics.lake import LAKE_SCHEMA, lake_info, lake_lock, read_lake, write_partition
from esms_analytics.simulator import Faults, Simulator
from esms_analytics.sync import sync

from .conftest import NOW

TODAY = NOW.date()
START = TODAY - timedelta(days=6)
KEY = ["sms_type", "date", "reference_id", "phone"]


def lake_frame(lake: Path) -> pl.DataFrame:
    return read_lake(lake).collect().sort(KEY)


def synced(sim: Simulator, lake: Path, **options: object) -> object:
    with sim.client() as client:
        options.setdefault("now", sim.clock.now())
        return sync(lake, START, TODAY, client=client, progress=False, **options)  # type: ignore[arg-type]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_layout_is_hive_partitions_without_partition_columns(sim: Simulator, lake: Path) -> None:
    report = synced(sim, lake, sms_types=[1, 2])
    assert report.complete  # type: ignore[attr-defined]
    files = sorted(lake.glob("sms/sms_type=*/date=*/part-0.parquet"))
    assert {file.parent.parent.name for file in files} == {"sms_type=1", "sms_type=2"}
    parquet = pq.ParquetFile(files[0])
    names = parquet.schema_arrow.names
    assert "sms_type" not in names
    assert "date" not in names
    metadata = parquet.schema_arrow.metadata
    assert metadata[b"esms_analytics.schema_version"] == b"1"
    column = parquet.metadata.row_group(0).column(names.index("sent_at"))
    assert column.compression == "ZSTD"
    assert column.statistics.has_min_max
    sent_at = parquet.schema.column(names.index("sent_at"))
    logical = json.loads(sent_at.logical_type.to_json())
    assert logical["Type"] == "Timestamp"
    assert logical["isAdjustedToUTC"] is True
    assert logical["timeUnit"] == "microseconds"
    assert parquet.schema_arrow.field("sent_at").type.tz == "Asia/Ho_Chi_Minh"
    assert not list(lake.rglob("*.tmp"))


def test_duckdb_and_pyarrow_read_what_read_lake_reads(sim: Simulator, lake: Path) -> None:
    synced(sim, lake)
    ours = lake_frame(lake)
    assert ours.height > 100
    assert ours.schema == LAKE_SCHEMA
    query = f"""
        SELECT * REPLACE (sent_at AT TIME ZONE 'Asia/Ho_Chi_Minh' AS sent_at)
        FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
    """
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        theirs = connection.sql(query).pl()
    theirs = theirs.with_columns(
        pl.col("sent_at").dt.replace_time_zone("Asia/Ho_Chi_Minh"),
        pl.col("sms_type").cast(pl.Int16),
    )
    assert_frame_equal(theirs.select(ours.columns).sort(KEY), ours, check_dtypes=False)
    as_strings = ours.with_columns(pl.col(pl.Enum).cast(pl.String))
    assert_frame_equal(
        theirs.select(ours.columns).sort(KEY).cast(as_strings.schema),  # type: ignore[arg-type]
        as_strings,
    )
    dataset = ds.dataset(lake / "sms", format="parquet", partitioning="hive")
    arrow = pl.from_arrow(dataset.to_table())
    assert isinstance(arrow, pl.DataFrame)
    arrow = arrow.with_columns(
        pl.col("sms_type").cast(pl.Int16), pl.col("date").cast(pl.String).str.to_date()
    )
    assert_frame_equal(arrow.select(ours.columns).sort(KEY).cast(as_strings.schema), as_strings)  # type: ignore[arg-type]


def test_read_lake_prunes_by_day_and_type(sim: Simulator, lake: Path) -> None:
    synced(sim, lake)
    some = read_lake(
        lake, start=TODAY - timedelta(days=2), end=TODAY - timedelta(days=1), sms_types=[2, 25]
    ).collect()
    everything = lake_frame(lake)
    expected = everything.filter(
        pl.col("date").is_between(TODAY - timedelta(days=2), TODAY - timedelta(days=1))
        & pl.col("sms_type").is_in([2, 25])
    )
    assert some.height > 0
    assert_frame_equal(some.sort(KEY), expected)


def test_second_sync_asks_nothing_for_settled_days_and_the_clock_settles_the_rest(
    sim: Simulator, lake: Path
) -> None:
    first = synced(sim, lake)
    windows = 7 * 7
    assert first.count("fetched") == windows  # type: ignore[attr-defined]
    settled_days = {w.date for w in first.windows if w.settled}  # type: ignore[attr-defined]
    # Settled: the day ended at least three days before NOW.
    assert settled_days == {START + timedelta(days=n) for n in range(3)}
    sim.reset_requests()
    second = synced(sim, lake)
    asked = {(int(r["SmsType"]), r["From"][:10]) for r in sim.requests}
    assert all(date.fromisoformat(day) not in settled_days for _, day in asked)
    assert second.count("skipped") == 3 * 7  # type: ignore[attr-defined]
    assert second.count("fetched") == 4 * 7  # type: ignore[attr-defined]
    old_file = next(lake.glob(f"sms/sms_type=2/date={START}/part-0.parquet"))
    old_mtime = old_file.stat().st_mtime_ns
    before = lake_frame(lake)

    sim.clock.advance(timedelta(days=3))
    sim.reset_requests()
    third = synced(sim, lake)
    asked_days = {r["From"][:10] for r in sim.requests}
    assert asked_days == {str(TODAY - timedelta(days=n)) for n in range(4)}
    assert old_file.stat().st_mtime_ns == old_mtime
    assert third.complete  # type: ignore[attr-defined]
    after = lake_frame(lake)
    recent = pl.col("date") >= TODAY - timedelta(days=3)
    assert not before.filter(recent)["is_final"].all()
    # Days that ended more than three days ago are final, and stay untouched.
    assert after.filter(pl.col("date") < TODAY)["is_final"].all()
    assert_frame_equal(after.filter(~recent), before.filter(~recent))
    sim.reset_requests()
    assert synced(sim, lake).count("skipped") == 6 * 7  # type: ignore[attr-defined]


def test_rows_arriving_while_paging_are_stored_exactly_once(lake: Path) -> None:
    faults = Faults(arrivals_per_request=7, arrival_requests=3)
    with Simulator(now=NOW, daily_volume=400, faults=faults) as sim:
        with sim.client() as client:
            report = sync(
                lake,
                TODAY,
                TODAY,
                sms_types=[2],
                client=client,
                progress=False,
                now=sim.clock.now(),
                page_size=25,
            )
        assert report.complete
        assert report.windows[0].requests > report.windows[0].rows // 25 + 1  # walked twice
        stored = read_lake(lake).collect()
        with sim.client() as client:
            fresh = fetch_days(client, TODAY, sms_types=[2])
    assert stored.select("reference_id", "phone").is_unique().all()
    assert stored.height == fresh.height == report.windows[0].count_total
    assert_frame_equal(stored.drop("date").sort(KEY[2:]), fresh.sort(KEY[2:]))


def test_a_window_that_never_settles_is_incomplete_and_keeps_its_old_partition(
    lake: Path,
) -> None:
    with Simulator(now=NOW, daily_volume=400) as sim, sim.client() as client:
        sync(lake, TODAY, TODAY, sms_types=[2], client=client, progress=False, now=sim.clock.now())
        before = read_lake(lake).collect()
        sim.faults.arrivals_per_request = 5
        report = sync(
            lake,
            TODAY,
            TODAY,
            sms_types=[2],
            client=client,
            progress=False,
            now=sim.clock.now(),
            page_size=20,
            max_passes=2,
        )
    assert not report.complete
    assert report.windows[0].status == "incomplete"
    assert "old partition is kept" in report.windows[0].detail
    assert_frame_equal(read_lake(lake).collect(), before)
    info = lake_info(lake)
    assert not info.windows["settled"].any()


def test_a_concurrent_sync_is_refused(sim: Simulator, lake: Path) -> None:
    lake.mkdir()
    with lake_lock(lake), pytest.raises(LakeLockedError, match="another sync"):
        synced(sim, lake)
    assert synced(sim, lake).complete  # type: ignore[attr-defined]


def test_the_lock_of_a_killed_process_does_not_block(sim: Simulator, lake: Path) -> None:
    lake.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from esms_analytics.lake import lake_lock\n"
            "with lake_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
            str(lake),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LakeLockedError, match=f"pid {holder.pid}"):
        synced(sim, lake)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert synced(sim, lake).complete  # type: ignore[attr-defined]


def test_an_interrupted_write_leaves_the_old_partition_whole(
    sim: Simulator, lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    file = next(lake.glob("sms/sms_type=2/date=*/part-0.parquet"))

    def broken_write(table: object, where: object, **options: object) -> None:
        Path(str(where)).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr("esms_analytics.lake.pq.write_table", broken_write)
    frame = (
        read_lake(lake)
        .collect()
        .filter(pl.col("date") == date.fromisoformat(file.parent.name[5:]))
        .drop("date")
        .head(3)
    )
    with pytest.raises(OSError, match="disk full"):
        write_partition(lake, 2, date.fromisoformat(file.parent.name[5:]), frame, fetched_at=NOW)
    assert_frame_equal(lake_frame(lake), before)
    assert not list(lake.rglob("*.tmp"))


@pytest.mark.slow
def test_a_sync_killed_mid_way_is_completed_by_the_next(tmp_path: Path) -> None:
    reference, lake = tmp_path / "reference", tmp_path / "lake"
    faults = Faults(latency=0.01)
    with Simulator(now=NOW, daily_volume=3000, faults=faults) as sim:
        with sim.client() as client:
            sync(reference, START, TODAY, client=client, progress=False, now=sim.clock.now())
        env = {**os.environ, "ESMS_API_KEY": sim.api_key, "ESMS_SECRET_KEY": sim.secret_key}
        command = [
            sys.executable,
            "-m",
            "esms_analytics",
            "sync",
            "--lake",
            str(lake),
            "--from",
            str(START),
            "--to",
            str(TODAY),
            "--base-url",
            sim.base_url,
            "--quiet",
            "--workers",
            "2",
            "--settle-days",
            "30",
        ]
        for wanted in (3, 15, 30):
            process = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 60
            while (
                len(list(lake.glob("sms/*/*/part-0.parquet"))) < wanted
                and process.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait()
            for file in lake.glob("sms/*/*/*.parquet"):
                pq.read_metadata(file)  # every partition is whole
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
    # Same simulator clock, so the same statuses: the lakes are equal row for row.
    assert_frame_equal(lake_frame(lake), lake_frame(reference))
    assert not list(lake.rglob("*.tmp"))


def test_a_corrupt_partition_is_named_and_repaired_by_refresh(sim: Simulator, lake: Path) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    victim = lake / "sms" / "sms_type=2" / f"date={START}" / "part-0.parquet"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(CorruptPartitionError, match=rf"date={START}.*--refresh"):
        read_lake(lake)
    info = lake_info(lake)
    assert info.windows.filter(pl.col("status") == "corrupt")["date"].to_list() == [START]
    assert "corrupt" in info.summary()
    with sim.client() as client:
        sync(
            lake,
            START,
            START,
            sms_types=[2],
            client=client,
            refresh=True,
            progress=False,
            now=sim.clock.now(),
        )
    assert_frame_equal(lake_frame(lake), before)


def test_bad_credentials_change_nothing(sim: Simulator, lake: Path) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    manifest = (lake / "_manifest.json").read_text()
    from esms_analytics import EsmsClient

    with (
        EsmsClient("wrong-key", "wrong-secret", base_url=sim.base_url) as client,
        pytest.raises(AuthError),
    ):
        sync(
            lake,
            START,
            TODAY,
            sms_types=[2],
            client=client,
            refresh=True,
            progress=False,
            now=sim.clock.now(),
        )
    assert_frame_equal(lake_frame(lake), before)
    assert (lake / "_manifest.json").read_text() == manifest


@pytest.mark.parametrize(
    ("start", "end", "types", "message"),
    [
        (TODAY, START, None, "swap"),
        (START, TODAY, [3], "SmsType 3"),
        (START, TODAY + timedelta(days=1), None, "future"),
        ("2026-13-01", TODAY, None, "YYYY-MM-DD"),
    ],
)
def test_bad_ranges_and_types_are_refused(
    sim: Simulator, lake: Path, start: object, end: object, types: list[int] | None, message: str
) -> None:
    with sim.client() as client, pytest.raises(ConfigError, match=message):
        sync(
            lake,
            start,
            end,
            sms_types=types,
            client=client,
            progress=False,  # type: ignore[arg-type]
            now=sim.clock.now(),
        )
    assert sim.requests == []


def test_a_lake_path_that_is_a_file_or_cannot_be_created(sim: Simulator, tmp_path: Path) -> None:
    file = tmp_path / "lake.txt"
    file.write_text("not a lake")
    with pytest.raises(LakeError, match="is a file"):
        synced(sim, file)
    assert file.read_text() == "not a lake"
    with pytest.raises(LakeError, match="cannot create"):
        synced(sim, Path("/proc/esms-lake"))
    with pytest.raises(LakeError, match="no lake"):
        read_lake(tmp_path / "nowhere")


def test_lake_info_reports_rows_freshness_unsettled_and_missing(sim: Simulator, lake: Path) -> None:
    with sim.client() as client:
        sync(
            lake,
            START,
            START + timedelta(days=1),
            client=client,
            progress=False,
            now=sim.clock.now(),
            sms_types=[2],
        )
        sync(lake, TODAY, TODAY, client=client, progress=False, now=sim.clock.now(), sms_types=[2])
    info = lake_info(lake)
    assert info.rows == lake_frame(lake).height
    assert info.windows["status"].to_list() == ["ok"] * 3
    assert info.windows.filter(~pl.col("settled"))["date"].to_list() == [TODAY]
    assert [day for _, day in info.missing] == [START + timedelta(days=n) for n in range(2, 6)]
    text = info.summary()
    assert "unsettled windows: 1" in text
    assert "missing windows: 4" in text


def test_an_empty_lake_reads_as_an_empty_frame_with_the_schema(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    frame = read_lake(tmp_path / "lake").collect()
    assert frame.height == 0
    assert frame.schema == LAKE_SCHEMA
    assert "empty" in lake_info(tmp_path / "lake").summary()


def test_no_secret_reaches_the_lake(lake: Path) -> None:
    secret = "SECRET-not-in-files-9"
    with Simulator(now=NOW, daily_volume=50, secret_key=secret) as sim, sim.client() as client:
        sync(lake, START, TODAY, client=client, progress=False, now=sim.clock.now())
    for file in lake.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes()
            assert sim.api_key.encode() not in file.read_bytes()


def test_a_window_growing_faster_than_it_can_be_paged_still_ends(lake: Path) -> None:
    faults = Faults(arrivals_per_request=60)
    with Simulator(now=NOW, daily_volume=100, faults=faults) as sim, sim.client() as client:
        report = sync(
            lake,
            TODAY,
            TODAY,
            sms_types=[2],
            client=client,
            progress=False,
            now=sim.clock.now(),
            page_size=50,
            max_passes=2,
        )
    assert report.windows[0].status == "incomplete"
    assert report.windows[0].requests < 100


def test_the_next_sync_clears_what_a_killed_one_left(sim: Simulator, lake: Path) -> None:
    synced(sim, lake, sms_types=[2])
    partition = next(lake.glob("sms/sms_type=2/date=*"))
    litter = [partition / ".part-0.parquet.999.1.tmp", lake / "._manifest.json.999.tmp"]
    for path in litter:
        path.write_bytes(b"half written")
    before = lake_frame(lake)
    synced(sim, lake, sms_types=[2])
    assert not any(path.exists() for path in litter)
    assert_frame_equal(lake_frame(lake), before)
