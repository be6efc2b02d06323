"""The lake and sync against the simulator: layout, engines, increments, crashes, bad input."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import AuthError, ConfigError, CorruptPartitionError, LakeError, fetch_days
from esms_analytics.check import lake_info
from esms_analytics.errors import LakeLockedError
from esms_analytics.lake import LAKE_SCHEMA, lake_lock, read_lake, reading_lake, write_partition
from esms_analytics.manifest import Manifest
from esms_analytics.simulator import Faults, Simulator
from esms_analytics.sync import sync

from .conftest import NOW
from .faultproxy import FaultProxy
from .lakes import Lake
from .s3 import S3Server

TODAY = NOW.date()
START = TODAY - timedelta(days=6)
KEY = ["sms_type", "date", "reference_id", "phone"]


def lake_frame(lake: Lake, **options: Any) -> pl.DataFrame:
    return read_lake(lake.location, storage_options=lake.options, **options).collect().sort(KEY)


def synced(sim: Simulator, lake: Lake, **options: Any) -> Any:
    with sim.client() as client:
        options.setdefault("now", sim.clock.now())
        options.setdefault("storage_options", lake.options)
        return sync(lake.location, START, TODAY, client=client, progress=False, **options)


@pytest.fixture(params=["disk", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    """A lake that does not exist yet: a directory, or a prefix of a fresh bucket."""
    if request.param == "disk":
        return Lake.on_disk(tmp_path / "lake")
    s3: S3Server = request.getfixturevalue("s3_server")
    return Lake.on_s3(s3, s3.new_bucket())


@pytest.fixture
def disk_lake(tmp_path: Path) -> Lake:
    return Lake.on_disk(tmp_path / "lake")


def test_layout_is_hive_partitions_without_partition_columns(sim: Simulator, lake: Lake) -> None:
    report = synced(sim, lake, sms_types=[1, 2])
    assert report.complete
    files = lake.objects("sms/sms_type=*/date=*/part-0.parquet")
    assert {file.split("/")[1] for file in files} == {"sms_type=1", "sms_type=2"}
    # The journal is folded into the manifest, and the lock's note is gone with the lock.
    assert set(lake.objects()) == {*files, "_manifest.json"}
    parquet = pq.ParquetFile(io.BytesIO(lake.read(files[0])))
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


def test_dictionaries_only_on_few_valued_columns_statistics_on_all(
    sim: Simulator, lake: Lake
) -> None:
    synced(sim, lake, sms_types=[2])
    key = lake.objects("sms/sms_type=*/date=*/part-0.parquet")[-1]
    metadata = pq.ParquetFile(io.BytesIO(lake.read(key))).metadata
    group = metadata.row_group(0)
    chunks = [group.column(index) for index in range(metadata.num_columns)]
    dictionary = {chunk.path_in_schema for chunk in chunks if chunk.has_dictionary_page}
    labels = {"sms_type_label", "send_status_label", "send_result_label"}
    assert dictionary == {"carrier", "encoding", "campaign", *labels}
    assert all(chunk.is_stats_set for chunk in chunks)
    # The labels still come back as Polars Enums, from the dictionaries.
    assert lake_frame(lake).schema == LAKE_SCHEMA


def test_duckdb_and_pyarrow_read_what_read_lake_reads(sim: Simulator, lake: Lake) -> None:
    synced(sim, lake)
    ours = lake_frame(lake)
    assert ours.height > 100
    assert ours.schema == LAKE_SCHEMA
    # DuckDB reads a local lake itself; an S3 lake through a pyarrow dataset, since
    # its own S3 extension is downloaded at run time.
    dataset = lake.dataset()
    source = (
        "dataset"
        if lake.kind == "s3"
        else f"read_parquet('{lake}/sms/*/*/part-0.parquet', hive_partitioning = true)"
    )
    query = f"""
        SELECT * REPLACE (sent_at AT TIME ZONE 'Asia/Ho_Chi_Minh' AS sent_at) FROM {source}
    """
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("dataset", dataset)
        theirs = connection.sql(query).pl()
    theirs = theirs.with_columns(
        pl.col("sent_at").dt.replace_time_zone("Asia/Ho_Chi_Minh"),
        pl.col("sms_type").cast(pl.Int16),
        pl.col("date").cast(pl.String).str.to_date(),
    )
    assert_frame_equal(theirs.select(ours.columns).sort(KEY), ours, check_dtypes=False)
    as_strings = ours.with_columns(pl.col(pl.Enum).cast(pl.String))
    assert_frame_equal(
        theirs.select(ours.columns).sort(KEY).cast(as_strings.schema),  # type: ignore[arg-type]
        as_strings,
    )
    arrow = pl.from_arrow(dataset.to_table())
    assert isinstance(arrow, pl.DataFrame)
    arrow = arrow.with_columns(
        pl.col("sms_type").cast(pl.Int16), pl.col("date").cast(pl.String).str.to_date()
    )
    assert_frame_equal(arrow.select(ours.columns).sort(KEY).cast(as_strings.schema), as_strings)  # type: ignore[arg-type]


def test_read_lake_prunes_by_day_and_type(sim: Simulator, lake: Lake) -> None:
    synced(sim, lake)
    some = lake_frame(
        lake, start=TODAY - timedelta(days=2), end=TODAY - timedelta(days=1), sms_types=[2, 25]
    )
    everything = lake_frame(lake)
    expected = everything.filter(
        pl.col("date").is_between(TODAY - timedelta(days=2), TODAY - timedelta(days=1))
        & pl.col("sms_type").is_in([2, 25])
    )
    assert some.height > 0
    assert_frame_equal(some.sort(KEY), expected)


def test_second_sync_asks_nothing_for_settled_days_and_the_clock_settles_the_rest(
    sim: Simulator, lake: Lake
) -> None:
    first = synced(sim, lake)
    windows = 7 * 7
    assert first.count("fetched") == windows
    settled_days = {w.date for w in first.windows if w.settled}
    # Settled: the day ended at least three days before NOW.
    assert settled_days == {START + timedelta(days=n) for n in range(3)}
    sim.reset_requests()
    second = synced(sim, lake)
    asked = {(int(r["SmsType"]), r["From"][:10]) for r in sim.requests}
    assert all(date.fromisoformat(day) not in settled_days for _, day in asked)
    assert second.count("skipped") == 3 * 7
    assert second.count("fetched") == 4 * 7
    old_file = f"sms/sms_type=2/date={START}/part-0.parquet"
    old_version = lake.version(old_file)
    before = lake_frame(lake)

    sim.clock.advance(timedelta(days=3))
    sim.reset_requests()
    third = synced(sim, lake)
    asked_days = {r["From"][:10] for r in sim.requests}
    assert asked_days == {str(TODAY - timedelta(days=n)) for n in range(4)}
    assert lake.version(old_file) == old_version
    assert third.complete
    after = lake_frame(lake)
    recent = pl.col("date") >= TODAY - timedelta(days=3)
    assert not before.filter(recent)["is_final"].all()
    # Days that ended more than three days ago are final, and stay untouched.
    assert after.filter(pl.col("date") < TODAY)["is_final"].all()
    assert_frame_equal(after.filter(~recent), before.filter(~recent))
    sim.reset_requests()
    assert synced(sim, lake).count("skipped") == 6 * 7


def test_rows_arriving_while_paging_are_stored_exactly_once(disk_lake: Lake) -> None:
    lake = disk_lake.root
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
    disk_lake: Lake,
) -> None:
    lake = disk_lake.root
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


def test_a_concurrent_sync_is_refused(sim: Simulator, lake: Lake) -> None:
    store = lake.store()
    store.prepare(create=True)
    with lake_lock(store), pytest.raises(LakeLockedError, match="another sync"):
        synced(sim, lake)
    assert sim.requests == []
    assert synced(sim, lake).complete


HOLDER = """
import sys, time
from datetime import timedelta
from esms_analytics.store import CloudStore, open_store
location, options = sys.argv[1], dict(arg.split("=", 1) for arg in sys.argv[2:])
store = CloudStore(location, storage_options=options, lease=timedelta(seconds=1)) if options else open_store(location)
store.prepare(create=True)
with store.lock():
    print("held", flush=True)
    time.sleep(60)
"""


def test_the_lock_of_a_killed_process_does_not_block_for_long(sim: Simulator, lake: Lake) -> None:
    options = [f"{key}={value}" for key, value in (lake.options or {}).items()]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, lake.location, *options], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LakeLockedError, match=f"pid {holder.pid}"):
        synced(sim, lake)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    if lake.kind == "s3":
        # The dead holder's lease runs out a second after its last renewal; then the
        # next sync takes the lock over.
        expires = json.loads(lake.read("_sync.lock"))["expires"]
        while datetime.now(UTC) <= datetime.fromisoformat(expires):
            time.sleep(0.05)
    assert synced(sim, lake).complete
    assert "_sync.lock" not in lake.objects()


def test_an_interrupted_write_leaves_the_old_partition_whole(
    sim: Simulator, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    stored = lake.objects()
    day = date.fromisoformat(lake.objects("sms/sms_type=2/date=*/part-0.parquet")[0][20:30])

    def broken_write(tables: object, schema: object, where: BinaryIO) -> None:
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr("esms_analytics.lake._write_parquet", broken_write)
    frame = lake_frame(lake).filter(pl.col("date") == day).drop("date").head(3)
    with pytest.raises(OSError, match="disk full"):
        write_partition(lake.store(), 2, day, frame, fetched_at=NOW)
    assert_frame_equal(lake_frame(lake), before)
    assert lake.objects() == stored


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
    assert_frame_equal(lake_frame(Lake.on_disk(lake)), lake_frame(Lake.on_disk(reference)))
    assert not list(lake.rglob("*.tmp"))


def test_a_corrupt_partition_is_named_and_repaired_by_refresh(sim: Simulator, lake: Lake) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    victim = f"sms/sms_type=2/date={START}/part-0.parquet"
    lake.write(victim, lake.read(victim)[:100])
    with (
        pytest.raises(CorruptPartitionError, match=rf"date={START}.*--lake {lake} .*--refresh"),
        reading_lake(lake.location, lake.options),
    ):
        lake_frame(lake)
    info = lake_info(lake.location, storage_options=lake.options)
    assert info.windows.filter(pl.col("status") == "corrupt")["date"].to_list() == [START]
    assert "corrupt" in info.summary()
    with sim.client() as client:
        sync(
            lake.location,
            START,
            START,
            sms_types=[2],
            client=client,
            refresh=True,
            progress=False,
            now=sim.clock.now(),
            storage_options=lake.options,
        )
    assert_frame_equal(lake_frame(lake), before)


def test_bad_credentials_change_nothing(sim: Simulator, lake: Lake) -> None:
    synced(sim, lake, sms_types=[2])
    before = lake_frame(lake)
    manifest = lake.read("_manifest.json")
    from esms_analytics import EsmsClient

    with (
        EsmsClient("wrong-key", "wrong-secret", base_url=sim.base_url) as client,
        pytest.raises(AuthError),
    ):
        sync(
            lake.location,
            START,
            TODAY,
            sms_types=[2],
            client=client,
            refresh=True,
            progress=False,
            now=sim.clock.now(),
            storage_options=lake.options,
        )
    assert_frame_equal(lake_frame(lake), before)
    assert lake.read("_manifest.json") == manifest


@pytest.mark.parametrize(
    ("start", "end", "types", "message"),
    [
        (TODAY, START, None, "swap"),
        (START, TODAY, [3], "3, which is not an eSMS message type"),
        (START, TODAY + timedelta(days=1), None, "future"),
        ("2026-13-01", TODAY, None, "YYYY-MM-DD"),
    ],
)
def test_bad_ranges_and_types_are_refused(
    sim: Simulator,
    disk_lake: Lake,
    start: object,
    end: object,
    types: list[int] | None,
    message: str,
) -> None:
    with sim.client() as client, pytest.raises(ConfigError, match=message):
        sync(
            disk_lake.location,
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
        synced(sim, Lake.on_disk(file))
    assert file.read_text() == "not a lake"
    with pytest.raises(LakeError, match="cannot create"):
        synced(sim, Lake.on_disk(Path("/proc/esms-lake")))
    with pytest.raises(LakeError, match="no lake"):
        read_lake(tmp_path / "nowhere")


def test_lake_info_reports_rows_freshness_unsettled_and_missing(sim: Simulator, lake: Lake) -> None:
    with sim.client() as client:
        for first, last in ((START, START + timedelta(days=1)), (TODAY, TODAY)):
            sync(
                lake.location,
                first,
                last,
                client=client,
                progress=False,
                now=sim.clock.now(),
                sms_types=[2],
                storage_options=lake.options,
            )
    info = lake_info(lake.location, storage_options=lake.options)
    assert info.lake == lake.location
    assert info.rows == lake_frame(lake).height
    assert info.windows["status"].to_list() == ["ok"] * 3
    assert info.windows.filter(~pl.col("settled"))["date"].to_list() == [TODAY]
    assert [day for _, day in info.missing] == [START + timedelta(days=n) for n in range(2, 6)]
    text = info.summary()
    assert "unsettled windows: 1" in text
    assert "missing windows: 4" in text


def test_an_empty_lake_reads_as_an_empty_frame_with_the_schema(lake: Lake) -> None:
    if lake.kind == "disk":
        Path(lake.location, "sms").mkdir(parents=True)  # a folder without sms/ is no lake
    else:
        lake.write("_manifest.json", b'{"schema_version": "1", "windows": {}}')
    frame = read_lake(lake.location, storage_options=lake.options).collect()
    assert frame.height == 0
    assert frame.schema == LAKE_SCHEMA
    assert "empty" in lake_info(lake.location, storage_options=lake.options).summary()


def test_a_folder_that_is_not_a_lake_is_refused(sim: Simulator, disk_lake: Lake) -> None:
    root = Path(disk_lake.location)
    (root.parent / "anything").mkdir()
    with pytest.raises(LakeError, match=r"is not a lake: it has no _manifest\.json"):
        read_lake(root.parent / "anything")
    synced(sim, disk_lake, sms_types=[2])
    with pytest.raises(LakeError, match=rf"inside a lake, not a lake.*\({root}\)"):
        read_lake(root / "sms")
    with pytest.raises(LakeError, match="is not a lake"):
        lake_info(root.parent / "anything")


def test_no_secret_reaches_the_lake(lake: Lake) -> None:
    secret = "SECRET-not-in-files-9"
    with Simulator(now=NOW, daily_volume=50, secret_key=secret) as sim:
        synced(sim, lake)
    secrets = [secret, sim.api_key, *(lake.options or {}).values()]
    secrets = [value for value in secrets if len(value) > 8 and value != lake.location]
    assert lake.objects()
    for key in lake.objects():
        data = lake.read(key)
        for value in secrets:
            assert value.encode() not in data, key


def test_a_window_growing_faster_than_it_can_be_paged_still_ends(disk_lake: Lake) -> None:
    lake = disk_lake.root
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


def test_the_next_sync_clears_what_a_killed_one_left(sim: Simulator, disk_lake: Lake) -> None:
    synced(sim, disk_lake, sms_types=[2])
    lake = Path(disk_lake.location)
    partition = next(lake.glob("sms/sms_type=2/date=*"))
    litter = [partition / ".part-0.parquet.999.1.tmp", lake / "._manifest.json.999.tmp"]
    for path in litter:
        path.write_bytes(b"half written")
    before = lake_frame(disk_lake)
    synced(sim, disk_lake, sms_types=[2])
    assert not any(path.exists() for path in litter)
    assert_frame_equal(lake_frame(disk_lake), before)


# -- object storage only ---------------------------------------------------------------


@pytest.fixture
def s3_lake(s3_server: S3Server) -> Lake:
    return Lake.on_s3(s3_server, s3_server.new_bucket())


def test_a_lake_on_s3_reads_value_for_value_like_one_on_disk(
    sim: Simulator, s3_lake: Lake, disk_lake: Lake
) -> None:
    synced(sim, disk_lake)
    synced(sim, s3_lake)
    on_s3 = lake_frame(s3_lake)
    assert on_s3.height > 100
    assert_frame_equal(on_s3, lake_frame(disk_lake))
    assert s3_lake.objects("sms/*") == disk_lake.objects("sms/*")
    on_disk = lake_info(disk_lake.location).windows
    assert_frame_equal(
        lake_info(s3_lake.location, storage_options=s3_lake.options).windows.drop("fetched_at"),
        on_disk.drop("fetched_at"),
    )


def test_reading_lists_only_the_types_and_days_asked_for(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake
) -> None:
    synced(sim, s3_lake)
    with FaultProxy(s3_server.port) as proxy:
        near = Lake.on_s3(s3_server, s3_lake.bucket, aws_endpoint_url=proxy.endpoint)
        frame = lake_frame(near, start=TODAY - timedelta(days=1), sms_types=[2, 24])
        listings = [line for line in proxy.requests if "list-type=2" in line]
    assert set(frame["date"]) == {TODAY - timedelta(days=1), TODAY}
    assert set(frame["sms_type"]) == {2, 24}
    # One listing of the lake's root (is there a lake?), then one per type asked
    # for, starting at the first day asked for; never the whole lake.
    assert len(listings) == 3
    day = f"date%3D{TODAY - timedelta(days=1)}"
    for sms_type in (2, 24):
        assert any(
            f"prefix=lake%2Fsms%2Fsms_type%3D{sms_type}%2F" in line and day in line
            for line in listings
        ), listings


def test_reading_sends_no_request_per_file_beyond_the_scans_own(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake
) -> None:
    synced(sim, s3_lake)
    keys = s3_lake.objects("sms/*")
    rows = lake_frame(s3_lake).height
    assert len(keys) > 10
    with FaultProxy(s3_server.port) as proxy:
        near = Lake.on_s3(s3_server, s3_lake.bucket, aws_endpoint_url=proxy.endpoint)
        uris = [f"{near.location}/{key}" for key in keys]
        plain = pl.scan_parquet(uris, hive_partitioning=True, storage_options=near.options)
        assert plain.select(pl.len()).collect().item() == rows
        scan_alone = list(proxy.requests)
        proxy.requests.clear()
        ours = read_lake(near.location, storage_options=near.options)
        assert ours.select(pl.len()).collect().item() == rows
        read = list(proxy.requests)
    # Beyond the scan's own: the manifest's HEAD and a listing, whatever the number of
    # files (before, each file's Parquet marks were read, two GETs, before each scan).
    assert len(read) - len(scan_alone) <= 3, read


def test_a_missing_bucket_or_refused_keys_stop_before_anything_is_fetched(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake
) -> None:
    missing = Lake.on_s3(s3_server, "no-such-bucket-anywhere")
    with pytest.raises(LakeError, match=r"no-such-bucket-anywhere.*bucket does not exist"):
        synced(sim, missing)
    with pytest.raises(LakeError, match="bucket does not exist"):
        lake_frame(missing)
    secret = "refused-SECRET-1234"
    refused = Lake.on_s3(s3_server, s3_lake.bucket, aws_secret_access_key=secret)
    with s3_server.enforcing_credentials():
        with pytest.raises(LakeError, match="refused the credentials") as caught:
            synced(sim, refused)
        assert secret not in str(caught.value)
        with pytest.raises(LakeError, match="refused the credentials"):
            lake_info(refused.location, storage_options=refused.options)
        assert sim.requests == []  # nothing was fetched
        assert s3_lake.objects() == []  # nothing was written
        assert synced(sim, s3_lake, sms_types=[2]).complete  # the right keys pass the checks
    assert s3_lake.objects("sms/sms_type=2/*")


def test_faults_between_sync_and_store_lose_nothing(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake, disk_lake: Lake
) -> None:
    synced(sim, disk_lake)
    with FaultProxy(s3_server.port) as proxy:
        near = Lake.on_s3(s3_server, s3_lake.bucket, aws_endpoint_url=proxy.endpoint, timeout="2s")
        proxy.plan(["pass", "503", "drop", "pass", "stall", "503", "503", "drop"], methods=["PUT"])
        report = synced(sim, near)
    assert report.complete
    assert not proxy.schedule
    assert proxy.injected == {"503": 3, "drop": 2, "stall": 1}
    # The lock, each partition and each manifest save went up, and every fault cost
    # one more attempt (lease renewals, if the sync ran long enough, add to the count).
    written = 1 + len(s3_lake.objects("sms/*")) + report.count("fetched")
    assert proxy.seen["PUT"] >= written + 6
    assert_frame_equal(lake_frame(s3_lake), lake_frame(disk_lake))
    assert s3_lake.objects() == ["_manifest.json", *s3_lake.objects("sms/*")]


KILLABLE_SYNC = """
import sys
from datetime import datetime, timedelta
from esms_analytics.client import EsmsClient
from esms_analytics.store import CloudStore
from esms_analytics.sync import sync
base_url, lake, start, end, now = sys.argv[1:6]
options = dict(arg.split("=", 1) for arg in sys.argv[6:])
store = CloudStore(lake, storage_options=options, lease=timedelta(seconds=1))
with EsmsClient(base_url=base_url, rate_limit=None) as client:
    sync(store, start, end, client=client, progress=False, now=datetime.fromisoformat(now),
         workers=2)
"""


@pytest.mark.slow
def test_a_sync_killed_during_an_upload_is_completed_by_the_next(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake, disk_lake: Lake
) -> None:
    synced(sim, disk_lake)
    synced(sim, s3_lake, sms_types=[2])  # objects for the killed sync to replace
    old = {key: s3_lake.read(key) for key in s3_lake.objects()}
    env = {**os.environ, "ESMS_API_KEY": sim.api_key, "ESMS_SECRET_KEY": sim.secret_key}
    with FaultProxy(s3_server.port) as proxy:
        options = s3_server.storage_options(endpoint=proxy.endpoint)
        arguments = [sim.base_url, s3_lake.location, str(START), str(TODAY), NOW.isoformat()]
        proxy.plan(["pass"] * 12 + ["stall"], methods=["PUT"])
        process = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_SYNC, *arguments]
            + [f"{key}={value}" for key, value in options.items()],
            env=env,
        )
        assert proxy.stalling.wait(60), "the sync never reached its 13th upload"
        process.send_signal(signal.SIGKILL)
        process.wait()
    # What the killed sync left: every object whole, each either old or new.
    for key in s3_lake.objects("sms/*"):
        assert pq.read_metadata(io.BytesIO(s3_lake.read(key))).num_rows > 0
    manifest = Manifest(s3_lake.store()).entries
    assert len(manifest) > len([key for key in old if key.startswith("sms/")])
    expires = json.loads(s3_lake.read("_sync.lock"))["expires"]
    while datetime.now(UTC) <= datetime.fromisoformat(expires):
        time.sleep(0.05)
    assert synced(sim, s3_lake).complete
    assert_frame_equal(lake_frame(s3_lake), lake_frame(disk_lake))
    assert s3_lake.objects() == ["_manifest.json", *s3_lake.objects("sms/*")]


def test_a_store_that_stays_down_ends_the_sync_and_keeps_every_finished_window(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake, disk_lake: Lake
) -> None:
    synced(sim, disk_lake)
    quick: Any = {"max_retries": 1, "backoff": {"init_backoff": timedelta(milliseconds=10)}}
    with FaultProxy(s3_server.port) as proxy:
        near = Lake.on_s3(s3_server, s3_lake.bucket, aws_endpoint_url=proxy.endpoint)
        proxy.plan(["pass"] * 9 + ["503"] * 1000, methods=["PUT"])
        with (
            sim.client() as client,
            pytest.raises(LakeError, match=r"SlowDown 503.*did not answer"),
        ):
            sync(
                near.store(retry=quick),
                START,
                TODAY,
                client=client,
                progress=False,
                now=sim.clock.now(),
                workers=1,
            )
    # The store went down before the journal could be folded in: readers take both.
    manifest = {key: entry.to_json() for key, entry in Manifest(s3_lake.store()).entries.items()}
    # Nine PUTs passed: the lock, then per window a journal object and, if it has rows, a file.
    assert 1 <= len(manifest) <= 8
    kept = lake_frame(s3_lake)
    # Each partition stored is whole and exactly the service's answer; a window whose
    # manifest save failed after its partition went up is fetched again next time.
    stored = [
        f"{key.split('/')[1][9:]}/{key.split('/')[2][5:]}" for key in s3_lake.objects("sms/*")
    ]
    recorded = [
        f"{entry['sms_type']}/{entry['date']}" for entry in manifest.values() if entry["rows"]
    ]
    assert set(recorded) <= set(stored)
    reference = lake_frame(disk_lake).filter(pl.format("{}/{}", "sms_type", "date").is_in(stored))
    assert_frame_equal(kept, reference)
    assert "_sync.lock" not in s3_lake.objects()  # released on the way out


def test_the_next_sync_aborts_the_uploads_a_killed_writer_left(
    sim: Simulator, s3_server: S3Server, s3_lake: Lake
) -> None:
    client: Any = s3_server.client()
    started = {}
    for key in ("lake/sms/sms_type=2/date=2026-11-14/part-0.parquet", "elsewhere/big.bin"):
        upload = client.create_multipart_upload(Bucket=s3_lake.bucket, Key=key)["UploadId"]
        client.upload_part(
            Bucket=s3_lake.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1024
        )
        started[key] = upload
    assert synced(sim, s3_lake, sms_types=[2]).complete
    left = client.list_multipart_uploads(Bucket=s3_lake.bucket).get("Uploads", [])
    # The lake's dead upload is gone; what lives outside the lake's prefix is not ours.
    assert [(upload["Key"], upload["UploadId"]) for upload in left] == [
        ("elsewhere/big.bin", started["elsewhere/big.bin"])
    ]
