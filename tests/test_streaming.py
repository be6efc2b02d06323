"""A window streams into its partition: batches spilled as they come, nothing visible early.

Issue 16, point 1. With :data:`~esms_analytics.windows.DECODE_BATCH_ROWS` made
small, a day of many pages is spilled batch by batch while it is walked; a
window that fails in any way leaves the old partition as it was and no
temporary file, on disk and in a bucket.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from esms_analytics import lake as lake_module
from esms_analytics import windows
from esms_analytics.client import EsmsClient
from esms_analytics.errors import AnswerError, LakeError
from esms_analytics.lake import PartitionWriter, read_lake
from esms_analytics.simulator import Simulator
from esms_analytics.sync import SyncReport, sync
from esms_analytics.windows import ROW_ORDER

from .conftest import NOW
from .lakes import Lake
from .s3 import S3Server

DAY = NOW.date() - timedelta(days=1)
ROWS = 150
PAGE = 20


@pytest.fixture(params=["disk", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "disk":
        return Lake.on_disk(tmp_path / "lake")
    s3: S3Server = request.getfixturevalue("s3_server")
    return Lake.on_s3(s3, s3.new_bucket())


@pytest.fixture
def day() -> Iterator[Simulator]:
    with Simulator(now=NOW, days=5, counts=lambda t, d: ROWS if t == 2 else 0, seed=5) as sim:
        yield sim


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Batches of a page and a half; a bucket's spills go to a folder the test watches."""
    monkeypatch.setattr(windows, "DECODE_BATCH_ROWS", 30)
    spills = tmp_path / "spills"
    spills.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spills))
    return spills


def sync_day(
    sim: Simulator, lake: Lake, *, client: EsmsClient | None = None, **options: Any
) -> SyncReport:
    """Sync the test's day, with ``client`` if given (one the test can stop), else a new one."""
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(sim.client())
        return sync(
            lake.location,
            DAY,
            DAY,
            sms_types=[2],
            client=client,
            progress=False,
            now=sim.clock.now(),
            storage_options=lake.options,
            page_size=PAGE,
            workers=1,
            **options,
        )


def litter(lake: Lake, spills: Path) -> list[str]:
    hidden = [key for key in lake.objects() if key.rpartition("/")[2].startswith(".")]
    return hidden + [path.name for path in spills.iterdir()]


def data_files(lake: Lake) -> dict[str, bytes]:
    return {key: lake.read(key) for key in lake.objects("sms/*")}


def test_a_window_is_spilled_batch_by_batch_before_its_walk_ends(
    day: Simulator, lake: Lake, small_batches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spilled: list[tuple[int, int, list[str]]] = []
    batches: list[pl.DataFrame] = []
    real_write = PartitionWriter.write

    def watched(writer: PartitionWriter, frame: pl.DataFrame) -> None:
        real_write(writer, frame)
        batches.append(frame)
        if len(batches) == 1:
            assert writer._path is None  # the first batch is held until a second one comes
            return
        assert writer._path is not None  # then the spill holds the rows, on its disk
        spilled.append((writer.rows, writer._path.stat().st_size, lake.objects("sms/*")))

    monkeypatch.setattr(PartitionWriter, "write", watched)
    report = sync_day(day, lake)
    assert report.complete
    assert report.rows == ROWS
    pages = -(-ROWS // PAGE)
    # Several batches reached the spill while pages were still to come, none visible.
    assert len(spilled) >= 3
    assert spilled[0][0] < ROWS
    assert [rows for rows, _, _ in spilled] == sorted(rows for rows, _, _ in spilled)
    assert all(size > 0 for _, size, _ in spilled)
    assert all(visible == [] for _, _, visible in spilled)
    assert report.requests == pages
    stored = read_lake(lake.location, storage_options=lake.options).collect()
    assert stored.height == ROWS
    # The documented order: each batch sorted by ROW_ORDER, the batches as they came
    # (no merge at commit, whose memory grew with the day).
    runs = [batch.sort(ROW_ORDER, nulls_last=True) for batch in batches]
    assert stored.drop("date").equals(pl.concat(runs))
    assert litter(lake, small_batches) == []


def fail_second_batch(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Raise ``error`` when the second batch is checked: the first is in the spill already."""
    real_check, calls = windows._check_rows, []

    def failing(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise error
        real_check(*args)

    monkeypatch.setattr(windows, "_check_rows", failing)


@pytest.mark.parametrize(
    "failure", ["answer", "disk full", "collision", "shrink refused", "stopped"]
)
def test_a_failed_window_leaves_the_old_partition_and_no_litter(
    day: Simulator,
    lake: Lake,
    small_batches: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
) -> None:
    assert sync_day(day, lake).complete
    before = data_files(lake)
    assert len(before) == 1
    if failure == "answer":
        fail_second_batch(
            monkeypatch, AnswerError("rows of SmsType 8", sms_type=2, window=str(DAY))
        )
    elif failure == "disk full":
        real_write, calls = PartitionWriter.write, []

        def filling(writer: PartitionWriter, frame: pl.DataFrame) -> None:
            calls.append(1)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            real_write(writer, frame)

        monkeypatch.setattr(PartitionWriter, "write", filling)
    elif failure == "collision":
        # Every row hashes alike: a forced 64-bit collision can only make the window
        # incomplete (fewer unique rows than CountTotal), never stored short.
        monkeypatch.setattr(
            windows, "_row_hashes", lambda frame: pl.Series([7] * frame.height, dtype=pl.UInt64)
        )
    elif failure == "shrink refused":
        monkeypatch.setattr(sys.modules["esms_analytics.sync"], "SHRINK_LIMIT", 2.0)
    with day.client() as client:
        if failure == "stopped":
            real_write = PartitionWriter.write

            def stopping(writer: PartitionWriter, frame: pl.DataFrame) -> None:
                real_write(writer, frame)
                client.stop.set()

            monkeypatch.setattr(PartitionWriter, "write", stopping)
        raised: LakeError | None = None
        try:
            report: SyncReport | None = sync_day(day, lake, client=client, refresh=True)
        except LakeError as exc:
            raised, report = exc, None
    if failure == "disk full":
        assert raised is not None
        assert "No space left on device" in str(raised)
    else:
        assert report is not None
        assert not report.complete
        expected = {
            "answer": "failed",
            "collision": "incomplete",
            "shrink refused": "failed",
            "stopped": "stopped",
        }[failure]
        assert [window.status for window in report.windows] == [expected]
    assert data_files(lake) == before
    assert litter(lake, small_batches) == []


def test_a_window_of_one_batch_is_never_spilled(
    day: Simulator, lake: Lake, small_batches: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The usual day fits one batch: spilling it and reading it back would cost CPU for nothing.
    monkeypatch.setattr(windows, "DECODE_BATCH_ROWS", ROWS * 2)
    spills: list[Path] = []
    real_spill_path = lake_module._spill_path

    def counted(store: Any) -> Path:
        spills.append(real_spill_path(store))
        return spills[-1]

    monkeypatch.setattr(lake_module, "_spill_path", counted)
    report = sync_day(day, lake)
    assert report.complete
    assert spills == []
    stored = read_lake(lake.location, storage_options=lake.options).collect().drop("date")
    assert stored.height == ROWS
    assert stored.equals(stored.sort(ROW_ORDER, nulls_last=True))
    assert litter(lake, small_batches) == []


def test_a_large_window_is_written_in_full_row_groups_from_its_spill(
    day: Simulator, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups of 64 rows from spilled runs of 30 (row groups of 8): the commit
    # regroups what it reads, it does not write the spill's groups or runs as they are.
    monkeypatch.setattr(lake_module, "ROW_GROUP_ROWS", 64)
    monkeypatch.setattr(lake_module, "SPILL_GROUP_ROWS", 8)
    assert sync_day(day, lake).complete
    (key,) = lake.objects("sms/*")
    parquet = pq.ParquetFile(io.BytesIO(lake.read(key)))
    sizes = [parquet.metadata.row_group(group).num_rows for group in range(parquet.num_row_groups)]
    assert sizes == [64, 64, ROWS - 128]
