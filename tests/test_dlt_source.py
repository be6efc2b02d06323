"""The dlt source against the simulator, loading into dlt's duckdb destination."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

dlt = pytest.importorskip("dlt")

from esms_analytics.client import EsmsClient  # noqa: E402
from esms_analytics.dlt import esms_source, resource_name  # noqa: E402
from esms_analytics.lake import read_lake  # noqa: E402
from esms_analytics.simulator import Faults, Simulator  # noqa: E402
from esms_analytics.sync import sync  # noqa: E402
from esms_analytics.windows import ROW_ORDER  # noqa: E402

from .conftest import NOW  # noqa: E402

TYPES = [2, 8]
FIRST = NOW.date() - timedelta(days=9)
LAST = NOW.date()
#: Settled at NOW with the default three days: the days that ended before NOW - 3 days.
UNSETTLED = [day for day in (LAST - timedelta(days=n) for n in range(4))]


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # dlt would report anonymous usage over the network; tests reach loopback only.
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")


class Warehouse:
    """A dlt pipeline into a DuckDB file of the test's own."""

    def __init__(self, root: Path):
        self.file = root / "warehouse.duckdb"
        self.pipeline = dlt.pipeline(
            pipeline_name="esms_test",
            destination=dlt.destinations.duckdb(str(self.file)),
            dataset_name="esms",
            pipelines_dir=str(root / "pipelines"),
        )

    def load(self, client: EsmsClient, **options: object) -> None:
        source = esms_source(FIRST, LAST, sms_types=TYPES, client=client, now=NOW, **options)
        self.pipeline.run(source).raise_on_failed_jobs()

    def rows(self) -> pl.DataFrame:
        """Every loaded row, both types, as the lake's columns (dlt's own columns dropped)."""
        with duckdb.connect(str(self.file), read_only=True) as con:
            frames = [con.sql(f"select * from esms.{resource_name(code)}").pl() for code in TYPES]
        frame = pl.concat(frames).drop(pl.selectors.starts_with("_dlt"))
        return _comparable(frame)


def _comparable(frame: pl.DataFrame) -> pl.DataFrame:
    # Labels load as text and time zones as the session's: compare values, in UTC.
    return (
        frame.with_columns(pl.col(pl.Enum).cast(pl.String()))
        .with_columns(pl.col("sent_at").dt.convert_time_zone("UTC"))
        .sort(["sms_type", "date", *ROW_ORDER], nulls_last=True)
    )


def _lake_rows(lake: Path) -> pl.DataFrame:
    return _comparable(read_lake(lake).collect())


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)


def _asked_days(sim: Simulator) -> list[tuple[int, date]]:
    """The (type, day) windows the simulator was asked for, first pages only."""
    return sorted(
        (int(request["SmsType"]), date.fromisoformat(str(request["From"])[:10]))
        for request in sim.requests
        if str(request.get("Page", "1")) == "1"
    )


def test_loaded_rows_equal_the_lakes_value_for_value(
    sim: Simulator, client: EsmsClient, warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.load(client)
    lake = tmp_path / "lake"
    sync(lake, FIRST, LAST, sms_types=TYPES, client=client, progress=False, now=NOW)
    loaded, stored = warehouse.rows(), _lake_rows(lake)
    assert loaded.height > 100
    assert loaded.columns == stored.columns
    assert_frame_equal(loaded, stored, check_dtypes=False)
    assert loaded.schema["sent_at"] == stored.schema["sent_at"]
    # The keys reach neither dlt's state nor its load packages nor the warehouse.
    for path in (p for p in tmp_path.rglob("*") if p.is_file() and "lake" not in p.parts):
        data = path.read_bytes()
        assert sim.api_key.encode() not in data, path
        assert sim.secret_key.encode() not in data, path


def test_a_second_run_asks_only_unsettled_days_and_duplicates_nothing(
    sim: Simulator, client: EsmsClient, warehouse: Warehouse
) -> None:
    warehouse.load(client)
    first = warehouse.rows()
    sim.reset_requests()
    warehouse.load(client)
    assert _asked_days(sim) == sorted((code, day) for code in TYPES for day in UNSETTLED)
    assert_frame_equal(warehouse.rows(), first)


def test_a_changed_status_arrives_and_the_settle_window_moves(
    sim: Simulator, client: EsmsClient, warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.load(client)
    before = warehouse.rows()
    sim.clock.advance(timedelta(days=2))
    later = sim.clock.now()
    source = esms_source(FIRST, LAST, sms_types=TYPES, client=client, now=later)
    sim.reset_requests()
    warehouse.pipeline.run(source).raise_on_failed_jobs()
    # Only the days unsettled at the first run are asked, and they settle now or later.
    assert {day for _, day in _asked_days(sim)} == set(UNSETTLED)
    after = warehouse.rows()
    lake = tmp_path / "lake"
    sync(lake, FIRST, LAST, sms_types=TYPES, client=client, progress=False, now=later)
    assert_frame_equal(after, _lake_rows(lake))
    changed = before.join(after, on=["sms_type", "sms_id"], suffix="_after").filter(
        pl.col("send_status") != pl.col("send_status_after")
    )
    assert changed.height > 0, "statuses of the unsettled days should have moved on"
    # Today filled up meanwhile: new rows arrived (and none twice: the lake says so above).
    assert after.height > before.height


def test_an_empty_answer_for_loaded_days_is_refused_and_asked_again(
    sim: Simulator, client: EsmsClient, warehouse: Warehouse
) -> None:
    warehouse.load(client)
    before = warehouse.rows()
    # Another service that has nothing (a wrong base URL, another account's keys).
    with (
        Simulator(now=NOW, days=20, counts=lambda *_: 0) as empty,
        empty.client() as other,
    ):
        warehouse.load(other)
        assert_frame_equal(warehouse.rows(), before)
        empty.reset_requests()
        warehouse.load(other)
        # Refused days stay unsettled: asked again on the next run.
        assert len({request["From"] for request in empty.requests}) == len(UNSETTLED)


def test_an_incomplete_window_is_not_loaded(warehouse: Warehouse) -> None:
    faults = Faults(arrivals_per_request=60)
    with (
        Simulator(now=NOW, days=20, daily_volume=100, faults=faults) as busy,
        busy.client() as client,
    ):
        source = esms_source(
            LAST, LAST, sms_types=[2], client=client, now=NOW, page_size=50, max_passes=2
        )
        warehouse.pipeline.run(source).raise_on_failed_jobs()
    with duckdb.connect(str(warehouse.file), read_only=True) as con:
        tables = {
            row[0] for row in con.sql("select table_name from information_schema.tables").fetchall()
        }
    assert resource_name(2) not in tables
