"""Reports recomputed independently with DuckDB SQL over the same lake files, and edge cases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import narwhals.stable.v2 as nw
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import decode_rows
from esms_analytics.lake import read_lake
from esms_analytics.plots import (
    figure_png,
    plot_carrier_performance,
    plot_cost_breakdown,
    plot_delivery_by_campaign,
    plot_delivery_trend,
    plot_failure_hotspots,
)
from esms_analytics.reports import (
    CARRIER_SCHEMA,
    DELIVERY_SCHEMA,
    HOTSPOT_SCHEMA,
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
from .s3 import S3Server

Z = 1.959963984540054
CAMPAIGN_SQL = (
    "CASE WHEN campaign IS NULL OR trim(campaign) = '' THEN '(no campaign)' ELSE trim(campaign) END"
)
OUTCOMES_SQL = """
    count(*) AS messages,
    count(*) FILTER (WHERE send_result = 1) AS delivered,
    count(*) FILTER (WHERE send_result = 0) AS failed,
    count(*) FILTER (WHERE send_result IS NULL OR send_result NOT IN (0, 1)) AS pending
"""
RATE_SQL = """
    CASE WHEN delivered + failed > 0 THEN delivered / (delivered + failed) END AS delivery_rate,
    CASE WHEN delivered + failed > 0 THEN greatest(0.0,
        (delivered / (delivered + failed) + {z2} / (2 * (delivered + failed))
         - {z} * sqrt(delivered / (delivered + failed) * (1 - delivered / (delivered + failed))
                     / (delivered + failed) + {z2} / (4 * (delivered + failed) ^ 2)))
        / (1 + {z2} / (delivered + failed))) END AS delivery_rate_low,
    CASE WHEN delivered + failed > 0 THEN least(1.0,
        (delivered / (delivered + failed) + {z2} / (2 * (delivered + failed))
         + {z} * sqrt(delivered / (delivered + failed) * (1 - delivered / (delivered + failed))
                     / (delivered + failed) + {z2} / (4 * (delivered + failed) ^ 2)))
        / (1 + {z2} / (delivered + failed))) END AS delivery_rate_high
""".format(z=Z, z2=Z * Z)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reports") / "lake"
    with Simulator(now=NOW, daily_volume=1500, days=40) as sim, sim.client() as client:
        sync(
            path,
            NOW.date() - timedelta(days=40),
            NOW.date(),
            client=client,
            progress=False,
            now=sim.clock.now(),
        )
    return path


@pytest.fixture(scope="module")
def sql(lake: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as connection:
        connection.execute("SET TimeZone = 'Asia/Ho_Chi_Minh'")
        connection.execute(
            f"CREATE VIEW sms AS SELECT * FROM read_parquet('{lake}/sms/**/*.parquet', "
            "hive_partitioning = true)"
        )
        yield connection


def compare(ours: pl.DataFrame, theirs: pl.DataFrame, keys: list[str]) -> None:
    assert ours.height > 0
    theirs = theirs.select(ours.columns).cast(
        {name: dtype for name, dtype in ours.schema.items() if not isinstance(dtype, pl.Datetime)}  # type: ignore[misc]
    )
    assert_frame_equal(ours.sort(keys), theirs.sort(keys), check_dtypes=False, rel_tol=1e-9)


def test_delivery_by_campaign_matches_sql(lake: Path, sql: duckdb.DuckDBPyConnection) -> None:
    ours = delivery_by_campaign(read_lake(lake))
    assert ours.schema == DELIVERY_SCHEMA
    theirs = sql.sql(f"""
        WITH g AS (
            SELECT {CAMPAIGN_SQL} AS campaign, {OUTCOMES_SQL},
                   min(sent_at) AS first_sent, max(sent_at) AS last_sent,
                   bool_or(NOT is_final) AS provisional
            FROM sms GROUP BY 1)
        SELECT *, {RATE_SQL}, pending / messages AS pending_share FROM g
    """).pl()
    theirs = theirs.with_columns(
        pl.col("first_sent", "last_sent").dt.convert_time_zone("Asia/Ho_Chi_Minh")
    )
    compare(ours, theirs, ["campaign"])
    assert ours["messages"].is_sorted(descending=True)


@pytest.mark.parametrize(
    ("by", "sql_keys"),
    [
        ("campaign", [f"{CAMPAIGN_SQL} AS campaign"]),
        ("carrier", ["carrier"]),
        ("sms_type", ["sms_type_label AS sms_type"]),
        ("date", ["date"]),
        ("week", ["date_trunc('week', date)::DATE AS week"]),
        ("month", ["date_trunc('month', date)::DATE AS month"]),
        (("carrier", "sms_type"), ["carrier", "sms_type_label AS sms_type"]),
    ],
)
def test_cost_breakdown_matches_sql(
    lake: Path, sql: duckdb.DuckDBPyConnection, by: str | tuple[str, ...], sql_keys: list[str]
) -> None:
    ours = cost_breakdown(read_lake(lake), by=by)  # type: ignore[arg-type]
    names = [by] if isinstance(by, str) else list(by)
    theirs = sql.sql(f"""
        WITH g AS (
            SELECT {", ".join(sql_keys)}, count(*) AS messages,
                   count(*) FILTER (WHERE send_result = 1) AS delivered,
                   sum(segments) AS segments,
                   sum(coalesce(sell_price, 0)) AS cost_vnd,
                   coalesce(sum(sell_price) FILTER (WHERE send_result = 1), 0) AS cost_delivered_vnd,
                   coalesce(sum(sell_price) FILTER (WHERE send_result = 0), 0) AS cost_failed_vnd
            FROM sms GROUP BY ALL)
        SELECT *, CASE WHEN delivered > 0 THEN cost_vnd / delivered END AS cost_per_delivered_vnd,
               cost_vnd / sum(cost_vnd) OVER () AS share
        FROM g
    """).pl()
    compare(ours, theirs, names)
    if names[0] in ("date", "week", "month"):
        assert ours[names[0]].is_sorted()  # time dimensions read chronologically
    else:
        assert ours["cost_vnd"].is_sorted(descending=True)
    assert ours["share"].sum() == pytest.approx(1.0)


def test_cost_totals_row_adds_up(lake: Path) -> None:
    report = cost_breakdown(read_lake(lake), by="carrier", totals=True)
    total = report.filter(pl.col("carrier") == "(total)")
    rest = report.filter(pl.col("carrier") != "(total)")
    assert report["carrier"][-1] == "(total)"
    for column in ("messages", "segments", "cost_vnd", "cost_failed_vnd"):
        assert total[column][0] == pytest.approx(rest[column].sum())


@pytest.mark.parametrize(("every", "unit"), [("1d", "day"), ("1w", "week"), ("1mo", "month")])
def test_delivery_trend_matches_sql(
    lake: Path, sql: duckdb.DuckDBPyConnection, every: str, unit: str
) -> None:
    ours = delivery_trend(read_lake(lake), every=every)  # type: ignore[arg-type]
    theirs = sql.sql(f"""
        WITH g AS (SELECT date_trunc('{unit}', date)::DATE AS period, {OUTCOMES_SQL},
                          sum(coalesce(sell_price, 0)) AS cost_vnd
                   FROM sms GROUP BY 1)
        SELECT *, CASE WHEN delivered + failed > 0 THEN delivered / (delivered + failed) END
               AS delivery_rate FROM g
    """).pl()
    compare(ours, theirs, ["period"])


def test_delivery_trend_by_carrier(lake: Path, sql: duckdb.DuckDBPyConnection) -> None:
    ours = delivery_trend(read_lake(lake), every="1w", by="carrier")
    theirs = sql.sql(f"""
        SELECT date_trunc('week', date)::DATE AS period, carrier, {OUTCOMES_SQL}
        FROM sms GROUP BY 1, 2
    """).pl()
    compare(ours.drop("delivery_rate", "cost_vnd"), theirs, ["period", "carrier"])


def test_carrier_performance_matches_sql(lake: Path, sql: duckdb.DuckDBPyConnection) -> None:
    ours = carrier_performance(read_lake(lake))
    assert ours.schema == CARRIER_SCHEMA
    theirs = sql.sql(f"""
        WITH g AS (SELECT carrier, sms_type_label AS sms_type, {OUTCOMES_SQL},
                          sum(coalesce(sell_price, 0)) AS cost_vnd
                   FROM sms GROUP BY 1, 2)
        SELECT *, {RATE_SQL},
               CASE WHEN delivered > 0 THEN cost_vnd / delivered END AS cost_per_delivered_vnd,
               messages / sum(messages) OVER (PARTITION BY sms_type) AS volume_share
        FROM g
    """).pl()
    compare(ours, theirs, ["carrier", "sms_type"])


def test_failure_hotspots_match_sql(lake: Path, sql: duckdb.DuckDBPyConnection) -> None:
    ours = failure_hotspots(read_lake(lake), min_messages=50, top=None)
    assert ours.schema == HOTSPOT_SCHEMA
    theirs = sql.sql(f"""
        WITH g AS (SELECT {CAMPAIGN_SQL} AS campaign, carrier, {OUTCOMES_SQL},
                          coalesce(sum(sell_price) FILTER (WHERE send_result = 0), 0)
                              AS cost_failed_vnd
                   FROM sms GROUP BY 1, 2),
        r AS (SELECT *, {RATE_SQL},
                     sum(delivered) OVER (PARTITION BY campaign)
                     / sum(delivered + failed) OVER (PARTITION BY campaign)
                         AS campaign_delivery_rate FROM g)
        SELECT * FROM r WHERE messages >= 50 AND delivery_rate IS NOT NULL
    """).pl()
    compare(ours, theirs, ["campaign", "carrier"])
    assert ours["delivery_rate"].is_sorted()
    top = failure_hotspots(read_lake(lake), min_messages=50, top=5)
    assert_frame_equal(top, ours.head(5))


def test_filters_prune_dates_types_and_campaigns(
    lake: Path, sql: duckdb.DuckDBPyConnection
) -> None:
    start, end = NOW.date() - timedelta(days=10), NOW.date() - timedelta(days=5)
    ours = delivery_by_campaign(
        read_lake(lake),
        start=start,
        end=end,
        sms_types=[1, 2],
        campaigns=["OTP đăng nhập", "Black Friday siêu sale"],
    )
    theirs = sql.sql(f"""
        SELECT {CAMPAIGN_SQL} AS campaign, count(*) AS messages FROM sms
        WHERE date BETWEEN '{start}' AND '{end}' AND sms_type IN (1, 2)
          AND campaign IN ('OTP đăng nhập', 'Black Friday siêu sale')
        GROUP BY 1
    """).pl()
    compare(ours.select("campaign", "messages"), theirs, ["campaign"])


def rows(*specs: tuple[object, int, int, int]) -> pl.DataFrame:
    """Canonical rows from (campaign, send_status, send_result, epoch_ms)."""
    return decode_rows(
        [
            {
                "SmsId": 1,
                "ReferenceId": f"r{index}",
                "Campaign": campaign,
                "Content": "Xin chào",
                "Phone": "0961234567",
                "SellPrice": 800,
                "SendStatus": status,
                "SendResult": result,
                "SentTime": f"/Date({ms}+0700)/",
                "SmsType": 2,
            }
            for index, (campaign, status, result, ms) in enumerate(specs)
        ]
    )


MS = 1_763_000_000_000  # 2025-11-13, a Thursday


def test_a_campaign_with_only_pending_rows_has_a_null_rate_and_is_provisional() -> None:
    report = delivery_by_campaign(rows(("Mới", 7, 2, MS), ("Mới", 2, 2, MS), ("Cũ", 5, 1, MS)))
    new = report.filter(pl.col("campaign") == "Mới").row(0, named=True)
    assert new["delivery_rate"] is None
    assert new["delivery_rate_low"] is None
    assert new["provisional"] is True
    assert new["pending_share"] == 1.0
    trend = delivery_trend(rows(("Mới", 7, 2, MS)))
    assert trend["delivery_rate"].to_list() == [None]


def test_null_and_empty_campaign_names_share_one_visible_label() -> None:
    report = delivery_by_campaign(rows((None, 5, 1, MS), ("", 5, 0, MS), ("  ", 5, 1, MS)))
    assert report.select("campaign", "messages").rows() == [("(no campaign)", 3)]


def test_a_single_row() -> None:
    frame = rows(("Một", 5, 1, MS))
    assert delivery_by_campaign(frame)["delivery_rate"].to_list() == [1.0]
    assert cost_breakdown(frame, by="date")["cost_per_delivered_vnd"].to_list() == [800.0]
    assert carrier_performance(frame)["volume_share"].to_list() == [1.0]
    assert failure_hotspots(frame, min_messages=1)["delivery_rate"].to_list() == [1.0]


def test_months_and_days_are_vietnamese_calendar_days() -> None:
    before_midnight = datetime(2026, 10, 31, 23, 30, tzinfo=NOW.tzinfo)  # 16:30 UTC
    after_midnight = datetime(2026, 11, 1, 0, 30, tzinfo=NOW.tzinfo)  # still 31 Oct in UTC
    frame = rows(
        *(
            ("Tết", 5, 1, int(moment.timestamp() * 1000))
            for moment in (before_midnight, after_midnight)
        )
    )
    months = cost_breakdown(frame, by="month").sort("month")
    assert months["month"].to_list() == [date(2026, 10, 1), date(2026, 11, 1)]
    days = delivery_trend(frame, every="1d")
    assert days["period"].to_list() == [date(2026, 10, 31), date(2026, 11, 1)]


def test_every_day_of_a_week_falls_in_the_week_of_its_monday_on_every_local_engine() -> None:
    # Three weeks across a new year, one row a day at noon: each weekday once per week.
    days = [date(2026, 12, 21) + timedelta(days=offset) for offset in range(21)]
    frame = rows(
        *(
            (
                "Tết",
                5,
                1,
                int(datetime(d.year, d.month, d.day, 12, tzinfo=NOW.tzinfo).timestamp() * 1000),
            )
            for d in days
        )
    )
    frame = frame.with_columns(date=pl.col("sent_at").dt.date())  # the lake's partition day
    mondays = [date(2026, 12, 21), date(2026, 12, 28), date(2027, 1, 4)]
    relation = duckdb.connect().sql("SELECT * FROM frame")
    for given in (frame, frame.to_pandas(), relation):
        trend = nw.from_native(delivery_trend(given, every="1w"))
        weeks = trend.lazy().collect(backend="polars").to_native()
        assert weeks["period"].cast(pl.Date).to_list() == mondays, type(given)
        assert weeks["messages"].to_list() == [7, 7, 7]


@pytest.mark.parametrize(
    "report",
    [
        lambda f: delivery_by_campaign(f),
        lambda f: cost_breakdown(f, by=["campaign", "month"], totals=True),
        lambda f: delivery_trend(f, every="1w", by="sms_type"),
        lambda f: carrier_performance(f),
        lambda f: failure_hotspots(f),
    ],
)
def test_an_empty_selection_gives_an_empty_frame_with_the_schema(lake: Path, report) -> None:  # type: ignore[no-untyped-def]
    empty = report(read_lake(lake, start=NOW.date() + timedelta(days=1)))
    assert empty.height == 0
    nonempty = report(rows(("A", 5, 1, MS)))
    assert empty.schema == nonempty.schema


@pytest.mark.parametrize(
    ("compute", "plot"),
    [
        (lambda f: delivery_by_campaign(f), plot_delivery_by_campaign),
        (lambda f: cost_breakdown(f, by=["carrier", "sms_type"], totals=True), plot_cost_breakdown),
        (lambda f: delivery_trend(f, every="1w"), plot_delivery_trend),
        (lambda f: delivery_trend(f, every="1d", by="carrier"), plot_delivery_trend),
        (lambda f: carrier_performance(f), plot_carrier_performance),
        (lambda f: failure_hotspots(f, min_messages=20), plot_failure_hotspots),
    ],
)
def test_each_plot_renders_headless_to_png(lake: Path, tmp_path: Path, compute, plot) -> None:  # type: ignore[no-untyped-def]
    for frame in (read_lake(lake), rows(("A", 5, 1, MS)).head(0)):
        png = figure_png(plot(compute(frame)))
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        (tmp_path / "plot.png").write_bytes(png)
        assert (tmp_path / "plot.png").stat().st_size > 5_000


def test_a_report_reads_a_bucket_from_its_url_and_the_standard_aws_environment(
    lake: Path, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lake's objects as they are, in a bucket; the keys and endpoint only in AWS_*.
    client: Any = s3_server.client()
    for path in sorted(lake.rglob("*")):
        if path.is_file():
            key = f"esms/{path.relative_to(lake).as_posix()}"
            client.put_object(Bucket=s3_bucket, Key=key, Body=path.read_bytes())
    for name, value in s3_server.storage_options().items():
        monkeypatch.setenv(name.upper(), value)
    by = ["carrier", "date"]
    assert_frame_equal(delivery(f"s3://{s3_bucket}/esms", by=by), delivery(lake, by=by))
