"""Every report on Polars (eager and lazy), pandas, DuckDB and Spark, compared value for value.

Each engine reads the same lake as its users would (Polars through read_lake,
pandas from it, DuckDB and Spark from the Parquet files themselves), gets the
same report call, and must give back its own kind of frame with the same
columns, the same rows in the same order and the same numbers (floats to
1e-12). Spark runs once per test run: every test here is in the xdist group
"spark".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import narwhals.stable.v2 as nw
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import decode_rows, read_lake
from esms_analytics.codes import TIME_ZONE, VN_TZ
from esms_analytics.lake import write_partition
from esms_analytics.reports import (
    carrier_performance,
    cost_breakdown,
    delivery,
    delivery_by_campaign,
    delivery_trend,
    failure_hotspots,
)
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

Report = Callable[[Any], Any]
DAY = NOW.date() - timedelta(days=8)


def _call(report: Callable[..., Any], frame: Any, **options: Any) -> Any:
    return report(frame, **options)


#: Every report with every option, as a user would call them.
REPORTS: dict[str, Report] = {
    "delivery_by_campaign": lambda f: delivery_by_campaign(f),
    **{
        f"delivery(by={by})": partial(_call, delivery, by=by)
        for by in ("campaign", "sms_type", "carrier", "date", "week", "month")
    },
    "delivery(by=carrier,date)": lambda f: delivery(f, by=["carrier", "date"]),
    "delivery(by=month,sms_type,campaign)": lambda f: delivery(
        f, by=("month", "sms_type", "campaign")
    ),
    **{
        f"cost_breakdown(by={by})": partial(_call, cost_breakdown, by=by)
        for by in ("campaign", "sms_type", "carrier", "date", "week", "month")
    },
    "cost_breakdown(by=carrier,sms_type)": lambda f: cost_breakdown(f, by=["carrier", "sms_type"]),
    "cost_breakdown(by=campaign,month,totals)": lambda f: cost_breakdown(
        f, by=["campaign", "month"], totals=True
    ),
    "cost_breakdown(by=date,totals)": lambda f: cost_breakdown(f, by="date", totals=True),
    **{
        f"delivery_trend({every})": partial(_call, delivery_trend, every=every)
        for every in ("1d", "1w", "1mo")
    },
    **{
        f"delivery_trend(1w,by={by})": partial(_call, delivery_trend, every="1w", by=by)
        for by in ("carrier", "sms_type", "campaign")
    },
    "carrier_performance": lambda f: carrier_performance(f),
    "failure_hotspots": lambda f: failure_hotspots(f),
    "failure_hotspots(min_messages=0,top=None)": lambda f: failure_hotspots(
        f, min_messages=0, top=None
    ),
    "failure_hotspots(min_messages=20,top=3)": lambda f: failure_hotspots(
        f, min_messages=20, top=3
    ),
    "failure_hotspots(top=0)": lambda f: failure_hotspots(f, min_messages=0, top=0),
    "filters(start,end,types,campaigns)": lambda f: delivery_by_campaign(
        f,
        start=DAY.isoformat(),
        end=DAY + timedelta(days=4),
        sms_types=["customer_care", 1],
        campaigns=["OTP đăng nhập", "Black Friday siêu sale", "Mới"],
    ),
    "filters(sms_type label, one campaign)": lambda f: cost_breakdown(
        f, by="date", sms_types="advertising", campaigns="Black Friday siêu sale"
    ),
    "empty selection": lambda f: cost_breakdown(
        f, by=["campaign", "week"], totals=True, start=NOW.date() + timedelta(days=1)
    ),
    "empty selection (delivery)": lambda f: delivery(
        f, by=["date", "carrier"], start=NOW.date() + timedelta(days=1)
    ),
}


# -- the lakes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synced_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `sync` wrote from the simulator: every type, two weeks."""
    path = tmp_path_factory.mktemp("engines") / "lake"
    with Simulator(now=NOW, daily_volume=400, days=14) as sim, sim.client() as client:
        sync(
            path,
            NOW.date() - timedelta(days=14),
            NOW.date(),
            client=client,
            progress=False,
            now=sim.clock.now(),
        )
    return path


def rows(*specs: tuple[object, int, int, datetime, str]) -> pl.DataFrame:
    """Canonical rows from (campaign, send_status, send_result, sent_at, phone)."""
    return decode_rows(
        [
            {
                "SmsId": 1,
                "ReferenceId": f"r{index}",
                "Campaign": campaign,
                "Content": "Xin chào",
                "Phone": phone,
                "SellPrice": 800 if index % 3 else None,
                "SendStatus": status,
                "SendResult": result,
                "SentTime": f"/Date({int(moment.timestamp() * 1000)}+0700)/",
                "SmsType": 2,
            }
            for index, (campaign, status, result, moment, phone) in enumerate(specs)
        ]
    )


def lake_of(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` as a lake, one partition per Vietnam day, as sync would."""
    days = frame.with_columns(day=pl.col("sent_at").dt.date())
    for (day,), part in days.group_by("day"):
        assert isinstance(day, date)
        write_partition(path, 2, day, part.drop("day"), fetched_at=NOW)
    return path


BEFORE_MIDNIGHT = datetime(2026, 10, 31, 23, 30, tzinfo=VN_TZ)  # 16:30 UTC, still 31 Oct
AFTER_MIDNIGHT = datetime(2026, 11, 1, 0, 30, tzinfo=VN_TZ)  # 17:30 UTC on 31 Oct


@pytest.fixture(scope="module")
def edge_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DuckDB cross-check's edge cases in one lake: a campaign with only pending
    rows, null, empty and blank names, rows on both sides of a Vietnam month
    boundary, two carriers, a null price."""
    frame = rows(
        ("Mới", 7, 2, BEFORE_MIDNIGHT, "0961234567"),
        ("Mới", 2, 2, AFTER_MIDNIGHT, "0901234567"),
        (None, 5, 1, BEFORE_MIDNIGHT, "0961234567"),
        ("", 5, 0, AFTER_MIDNIGHT, "0961234567"),
        ("  ", 5, 1, AFTER_MIDNIGHT, "0901234567"),
        ("Tết", 5, 1, BEFORE_MIDNIGHT, "0961234567"),
        ("Tết", 5, 0, AFTER_MIDNIGHT, "0901234567"),
        ("Tết ", 4, 0, AFTER_MIDNIGHT + timedelta(days=3), "0911234567"),
    )
    return lake_of(frame, tmp_path_factory.mktemp("edges") / "lake")


@pytest.fixture(scope="module")
def one_row_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = rows(("Một", 5, 1, AFTER_MIDNIGHT, "0961234567"))
    return lake_of(frame, tmp_path_factory.mktemp("one") / "lake")


# -- the engines, and the way back to compare ---------------------------------------------


def engine_inputs(lake: Path, spark: Any) -> dict[str, Any]:
    """The same lake as each engine's users hold it.

    Spark's frame is cached once read: what is compared is the reports, and
    Spark lists and scans the files on every action otherwise.
    """
    connection = duckdb.connect()
    return {
        "polars eager": read_lake(lake).collect(),
        "polars lazy": read_lake(lake),
        "pandas": read_lake(lake).collect().to_pandas(),
        "duckdb": connection.sql(
            f"SELECT * FROM read_parquet('{lake}/sms/**/*.parquet', hive_partitioning = true)"
        ),
        "spark": spark.read.parquet(f"{lake}/sms").cache(),
    }


def to_polars(result: Any) -> pl.DataFrame:
    """Any engine's report as a Polars frame, instants in Vietnam time."""
    if isinstance(result, pl.DataFrame):
        frame = result
    elif isinstance(result, pd.DataFrame):
        frame = pl.from_pandas(result, nan_to_null=True)
    elif isinstance(result, duckdb.DuckDBPyRelation):
        frame = result.pl()
    else:
        frame = pl.from_arrow(result.toArrow())  # type: ignore[assignment]
    return frame.with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone(TIME_ZONE).dt.cast_time_unit("us")
    )


KINDS = {
    "polars eager": pl.DataFrame,
    "polars lazy": pl.DataFrame,
    "pandas": pd.DataFrame,
    "duckdb": duckdb.DuckDBPyRelation,
}


def check_engines_agree(report: Report, inputs: dict[str, Any]) -> pl.DataFrame:
    inputs = dict(inputs)
    expected = report(inputs.pop("polars lazy"))
    assert isinstance(expected, pl.DataFrame)
    for engine, given in inputs.items():
        result = report(given)
        kind = KINDS.get(engine)
        if kind is None:  # Spark: a Spark DataFrame, not yet computed
            assert type(result).__name__ == "DataFrame"
            assert type(result).__module__.startswith("pyspark.sql")
        else:
            assert isinstance(result, kind), engine
        check_dtypes(result, expected)
        theirs = to_polars(result).cast(
            {n: t for n, t in expected.schema.items() if not isinstance(t, pl.Datetime)}  # type: ignore[misc]
        )
        assert theirs.columns == expected.columns, engine
        assert_frame_equal(theirs, expected, rel_tol=1e-12, abs_tol=1e-12, check_dtypes=True)
    return expected


def check_dtypes(result: Any, expected: pl.DataFrame) -> None:
    """Labels are strings, days dates, counts Int64, rates Float64: as the engine spells them."""
    theirs = nw.from_native(result).collect_schema()
    ours = nw.from_native(expected).collect_schema()
    for name, dtype in ours.items():
        if dtype == nw.Datetime:
            # Narwhals reads pandas 3's zoned datetimes as Unknown: ask pandas.
            native = result[name].dtype if isinstance(result, pd.DataFrame) else None
            assert theirs[name] == nw.Datetime or pd.api.types.is_datetime64_any_dtype(native)
        elif dtype == nw.Date and theirs[name] != nw.Date:
            # pandas has no date dtype of its own unless pyarrow-backed.
            assert theirs[name] == nw.Datetime, name
        else:
            assert theirs[name] == dtype, name


@pytest.fixture(scope="module")
def synced(synced_lake: Path, spark: Any) -> dict[str, Any]:
    return engine_inputs(synced_lake, spark)


@pytest.fixture(scope="module")
def edges(edge_lake: Path, spark: Any) -> dict[str, Any]:
    return engine_inputs(edge_lake, spark)


@pytest.fixture(scope="module")
def one_row(one_row_lake: Path, spark: Any) -> dict[str, Any]:
    return engine_inputs(one_row_lake, spark)


# -- the tests -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_engine_gives_the_same_report_on_the_synced_lake(
    synced: dict[str, Any], name: str
) -> None:
    expected = check_engines_agree(REPORTS[name], synced)
    if not name.startswith("empty") and "top=0" not in name:
        assert expected.height > 0


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_engine_gives_the_same_report_on_the_edge_cases(
    edges: dict[str, Any], name: str
) -> None:
    check_engines_agree(REPORTS[name], edges)


@pytest.mark.parametrize(
    "name",
    [
        "delivery_by_campaign",
        "cost_breakdown(by=date)",
        "delivery_trend(1d)",
        "carrier_performance",
        "failure_hotspots(min_messages=0,top=None)",
    ],
)
def test_every_engine_gives_the_same_report_on_one_row(one_row: dict[str, Any], name: str) -> None:
    assert check_engines_agree(REPORTS[name], one_row).height == 1


def test_the_edge_cases_mean_what_the_reports_promise(edge_lake: Path, spark: Any) -> None:
    report = to_polars(delivery_by_campaign(spark.read.parquet(f"{edge_lake}/sms")))
    by_name = {row["campaign"]: row for row in report.iter_rows(named=True)}
    assert set(by_name) == {"Mới", "(no campaign)", "Tết"}
    assert by_name["Mới"]["delivery_rate"] is None
    assert by_name["Mới"]["provisional"] is True
    assert by_name["(no campaign)"]["messages"] == 3
    assert by_name["Tết"]["messages"] == 3  # "Tết " is "Tết"
    months = to_polars(cost_breakdown(spark.read.parquet(f"{edge_lake}/sms"), by="month"))
    assert months["month"].to_list() == [date(2026, 10, 1), date(2026, 11, 1)]


def test_spark_reads_the_synced_lake_as_a_user_would(synced_lake: Path, spark: Any) -> None:
    frame = spark.read.parquet(f"{synced_lake}/sms")
    fields = {field.name: field.dataType.simpleString() for field in frame.schema.fields}
    assert fields["sms_type"] == "int"
    assert fields["date"] == "date"
    assert frame.count() == read_lake(synced_lake).select(pl.len()).collect().item()
    key = ["sms_type", "reference_id", "phone", "sent_at"]
    ours = read_lake(synced_lake).select(key).collect().sort(key)
    theirs = to_polars(frame.select(*key)).cast({"sms_type": pl.Int16}).sort(key)
    assert_frame_equal(theirs, ours)  # sent_at: the same instants


def test_a_spark_report_stays_in_spark_until_asked(synced_lake: Path, spark: Any) -> None:
    report = delivery(spark.read.parquet(f"{synced_lake}/sms"), by=["carrier", "date"])
    plan = report._jdf.queryExecution().toString()
    assert "Aggregate" in plan  # a distributed plan, nothing collected yet
    assert report.count() > 0


@pytest.fixture(scope="module")
def spark_connect(spark_remote: str) -> Iterator[Any]:
    """A Spark Connect client of the test run's one Spark session: no second JVM.

    Built with the Connect session class itself: PySpark's common builder refuses a
    remote session in a process that already runs a local one (this test process).
    """
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(spark_remote).create()
    yield session
    session.stop()


@pytest.mark.parametrize(
    "name",
    [
        "delivery(by=carrier,date)",
        "cost_breakdown(by=campaign,month,totals)",
        "delivery_trend(1w,by=sms_type)",
        "carrier_performance",
        "failure_hotspots(min_messages=0,top=None)",
        "filters(start,end,types,campaigns)",
    ],
)
def test_a_spark_connect_frame_gives_the_same_report(
    synced_lake: Path, spark_connect: Any, name: str
) -> None:
    remote = spark_connect.read.parquet(f"{synced_lake}/sms")
    assert type(remote).__module__ == "pyspark.sql.connect.dataframe"
    inputs = {"polars lazy": read_lake(synced_lake), "spark connect": remote}
    assert check_engines_agree(REPORTS[name], inputs).height > 0
