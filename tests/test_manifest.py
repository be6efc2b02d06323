"""The manifest: a journal whose record costs the same at any size, strict types, rebuilt from files."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from esms_analytics import check_lake
from esms_analytics.check import lake_info
from esms_analytics.cli import main
from esms_analytics.lake import read_lake, write_partition
from esms_analytics.manifest import JOURNAL_DIR, MANIFEST_NAME, Manifest, WindowEntry
from esms_analytics.simulator import Simulator
from esms_analytics.store import LakeStore
from esms_analytics.sync import sync

from .conftest import NOW
from .lakes import Lake
from .s3 import S3Server

TODAY = NOW.date()
START = TODAY - timedelta(days=6)
FIRST_DAY = date(2016, 1, 1)


@pytest.fixture(params=["disk", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LakeStore:
    if request.param == "disk":
        lake = Lake.on_disk(tmp_path / "lake")
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        lake = Lake.on_s3(s3, s3.new_bucket())
    built = lake.store()
    built.prepare(create=True)
    return built


def entry(day: date, *, sms_type: int = 2, rows: int = 120) -> WindowEntry:
    return WindowEntry(sms_type, day, NOW, rows, rows, 1, True)


def counting(store: LakeStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record every (key, bytes) the store writes from now on."""
    writes: list[tuple[str, int]] = []
    original = store.write

    def write(key: str, data: bytes) -> None:
        writes.append((key, len(data)))
        original(key, data)

    monkeypatch.setattr(store, "write", write)
    return writes


def test_recording_a_window_writes_the_same_bytes_at_any_lake_size(
    store: LakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = Manifest(store)
    for offset in range(2000):  # five and a half years of one type
        manifest.record(entry(FIRST_DAY + timedelta(days=offset)))
    manifest.compact()
    small = Manifest(store)
    writes = counting(store, monkeypatch)
    small.record(entry(FIRST_DAY + timedelta(days=3000)))
    at_2000 = list(writes)
    # The same window recorded into a lake of ten windows.
    fresh = Manifest(store)
    fresh.entries = dict(list(fresh.entries.items())[:10])
    writes.clear()
    fresh.record(entry(FIRST_DAY + timedelta(days=3001)))
    assert len(at_2000) == len(writes) == 1  # one small object, nothing rewritten
    assert at_2000[0][1] == writes[0][1] < 300
    assert at_2000[0][0].startswith(f"{JOURNAL_DIR}/")


def test_a_sync_killed_before_compacting_loses_nothing_recorded(store: LakeStore) -> None:
    manifest = Manifest(store)
    recorded = [entry(TODAY - timedelta(days=n)) for n in range(5)]
    for window in recorded:
        manifest.record(window)
    # Killed here: no _manifest.json yet, only the journal.
    assert store.read(MANIFEST_NAME) is None
    again = Manifest(store)
    assert again.problem is None
    assert sorted(again.entries.values(), key=str) == sorted(recorded, key=str)
    # Killed after the compacted manifest went up, before the journal was removed.
    again.compact()
    for window in recorded[:2]:
        store.write(
            f"{JOURNAL_DIR}/2_{window.date}.json", json.dumps(window.to_json()).encode("utf-8")
        )
    store.write(f"{JOURNAL_DIR}/2_1999-01-01.json", b'{"sms_type": 2, "date": "1999-')
    third = Manifest(store)
    assert sorted(third.entries.values(), key=str) == sorted(recorded, key=str)
    third.compact()
    assert store.list_files(f"{JOURNAL_DIR}/") == []
    newer = WindowEntry(2, TODAY, NOW + timedelta(hours=1), 7, 7, 1, False)
    store.write(f"{JOURNAL_DIR}/2_{TODAY}.json", json.dumps(newer.to_json()).encode("utf-8"))
    assert Manifest(store).get(2, TODAY) == newer  # the later fetch wins


GOOD: dict[str, Any] = entry(TODAY).to_json()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("settled", "false", '"settled" is "false", not a JSON bool'),
        ("settled", 0, '"settled" is 0, not a JSON bool'),
        ("rows", True, '"rows" is true, not a JSON int'),
        ("rows", "120", '"rows" is "120", not a JSON int'),
        ("rows", -1, '"rows" is -1, below 0'),
        ("count_total", 1.5, '"count_total" is 1.5, not a JSON int'),
        ("sms_type", None, '"sms_type" is null, not a JSON int'),
        ("date", "2026-13-01", "month must be in 1..12"),
        ("fetched_at", "2026-11-20T10:00:00", "has no time zone"),
    ],
)
def test_manifest_entries_are_read_with_strict_json_types(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WindowEntry.from_json({**GOOD, field: value})
    assert WindowEntry.from_json(GOOD) == entry(TODAY)


def test_a_deleted_manifest_is_rebuilt_from_the_files(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    with sim.client() as client:
        sync(lake, START, TODAY, client=client, progress=False, now=sim.clock.now())
    original = Manifest(lake).entries
    (lake / MANIFEST_NAME).unlink()
    rebuilt = Manifest(lake)
    with_rows = {key: value for key, value in original.items() if value.rows}
    assert rebuilt.entries == with_rows  # fetched_at, rows, CountTotal, requests, settled
    assert rebuilt.rebuilt == len(with_rows) > 0
    assert rebuilt.problem is not None
    assert "rebuilt" in rebuilt.problem
    info = lake_info(lake)
    assert info.rows == read_lake(lake).collect().height > 0
    assert not info.healthy
    assert main(["lake", "info", "--lake", str(lake)]) == 5
    out = capsys.readouterr().out
    assert "is missing" in out
    assert "rebuilt" in out
    assert "empty" not in out
    # The next sync asks only for what it would have asked for, and writes the manifest.
    sim.reset_requests()
    with sim.client() as client:
        sync(lake, START, TODAY, client=client, progress=False, now=sim.clock.now())
    asked = {(int(r["SmsType"]), r["From"][:10]) for r in sim.requests}
    unsettled = {key for key, value in original.items() if not value.settled}
    empty = {key for key, value in original.items() if not value.rows}
    assert {f"{t}/{d}" for t, d in asked} == unsettled | empty
    assert lake_info(lake).healthy
    assert main(["lake", "info", "--lake", str(lake)]) == 0


def test_lake_check_warns_of_negative_prices_and_fails_on_non_finite_ones(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    with sim.client() as client:
        sync(lake, START, START, sms_types=[2], client=client, progress=False, now=NOW)
    assert main(["lake", "check", "--lake", str(lake)]) == 0
    assert "0 problems, 0 warnings" in capsys.readouterr().out
    day = read_lake(lake).drop("date").collect()
    refunds = day.with_columns(
        pl.when(pl.int_range(pl.len()) < 2).then(-pl.col("sell_price")).otherwise("sell_price")
    )
    write_partition(lake, 2, START, refunds, fetched_at=datetime.now(NOW.tzinfo))
    check = check_lake(lake)
    assert check.ok
    assert [str(finding) for finding in check.findings] == [
        f"warning: sms/sms_type=2/date={START}/part-0.parquet: 2 rows have a negative "
        "sell_price (refunds?)"
    ]
    assert main(["lake", "check", "--lake", str(lake)]) == 0
    capsys.readouterr()
    broken = day.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("nan"))
        .otherwise("sell_price")
        .alias("sell_price")
    )
    write_partition(lake, 2, START, broken, fetched_at=datetime.now(NOW.tzinfo))
    assert not check_lake(lake).ok
    assert main(["lake", "check", "--lake", str(lake)]) == 5
    assert "1 rows have a non-finite sell_price" in capsys.readouterr().out


def test_files_a_manifest_does_not_list_are_reported_and_fetched_again(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    with sim.client() as client:
        sync(lake, START, START, sms_types=[2], client=client, progress=False, now=NOW)
    # A manifest restored from an old backup: whole, but it knows none of the files.
    (lake / MANIFEST_NAME).write_text('{"schema_version": "1", "windows": {}}')
    info = lake_info(lake)
    assert info.windows["status"].to_list() == ["unrecorded"]
    assert info.rows == read_lake(lake).collect().height > 0
    assert main(["lake", "info", "--lake", str(lake)]) == 5
    assert "unrecorded: sms_type=2" in capsys.readouterr().out
    with sim.client() as client:
        report = sync(lake, START, START, sms_types=[2], client=client, progress=False, now=NOW)
    assert report.windows[0].detail == "missing"
    assert lake_info(lake).healthy


def test_lake_check_finds_rows_labelled_with_another_type_than_their_partition(
    sim: Simulator, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    with sim.client() as client:
        sync(lake, START, START, sms_types=[2], client=client, progress=False, now=NOW)
    path = lake / "sms" / "sms_type=2" / f"date={START}" / "part-0.parquet"
    table = pq.read_table(path)
    index = table.schema.get_field_index("sms_type_label")
    field = table.schema.field(index)
    labels = table.column(index).cast(pa.string()).to_pylist()
    labels[:3] = ["zalo_normal"] * 3
    table = table.set_column(index, field, pa.array(labels).cast(field.type))
    pq.write_table(table, path)
    assert lake_info(lake).healthy  # the footer cannot tell
    check = check_lake(lake)
    assert not check.ok
    assert [finding.message for finding in check.findings] == [
        "3 rows are labelled with another SmsType than sms_type=2"
    ]
