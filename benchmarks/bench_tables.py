"""Table formats: a 3-year x 7-type report on Hive, Delta, Iceberg and compacted tables.

The rows are those of section 6 (``bench_files``): every SmsType (7), a few
rows per type and day, one (type, day) window each, for ``days`` days. They
are written as:

- the project's Hive lake, one file per (type, day) (``bench_files.build_daily``);
- a Delta table and an Iceberg table (pyiceberg, the SQLite catalog in the
  lake's folder), each built through the sync's own steps: every window held
  by a :class:`~esms_analytics.lake.PartitionWriter`, staged by the sync's
  :class:`~esms_analytics.sync.Staging` and committed with the manifest; one
  commit for all the windows (a first sync), and for Delta also one commit a
  night (a sync of one day, the history nightly syncs leave);
- compacted: the Delta table after the project's ``compact()`` (Delta's
  ``optimize.compact()``); the month-partitioned Hive variant of section 6
  (one file per (type, month), ``bench_files.compact_monthly``); and a Delta
  table partitioned by ``sms_type`` alone, appended a month at a time, then
  ``optimize.compact()``-ed.

Each layout's report is ``delivery_by_campaign(read_lake(lake))`` in a fresh
interpreter (``bench_reports.RUNNER``, which reads Hive, Delta and Iceberg
lakes alike); DuckDB runs the same report in SQL over the Hive files, and over
the Delta tables through ``DeltaTable.to_pyarrow_dataset()``. Before anything
is timed, every layout's report and DuckDB's are checked to hold the same rows.

Run on its own (section 9 of BENCHMARKS.md, printed for splicing by hand)::

    python -m benchmarks.bench_tables
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from benchmarks.bench_files import (
    FETCHED_AT,
    FIRST_DAY,
    build_daily,
    compact_monthly,
    month_rows,
    type_day_frame,
)
from benchmarks.bench_reports import DUCKDB_DELIVERY, RUNNER
from benchmarks.common import in_subprocess
from esms_analytics import delivery_by_campaign, read_lake
from esms_analytics.codes import SMS_TYPES
from esms_analytics.lake import PartitionWriter, open_lake
from esms_analytics.manifest import Manifest, WindowEntry
from esms_analytics.sync import Staging
from esms_analytics.tables import DELTA, ICEBERG, TABLE_SCHEMA, choose_table_format, open_table
from esms_analytics.tables.iceberg import CATALOG_NAME, LOCAL_CATALOG
from esms_analytics.windows import ROW_ORDER

#: Three years of days, rows per type and day, and timed runs, at `make bench` sizes.
DAYS = 1095
ROWS_PER_FILE = 100
REPEATS = 5
REPORT = "delivery_by_campaign"
#: The columns of our report that DuckDB's SQL computes too (not the Wilson interval).
SHARED_COLUMNS = (
    "campaign",
    "messages",
    "delivered",
    "failed",
    "pending",
    "first_sent",
    "last_sent",
    "provisional",
    "delivery_rate",
    "pending_share",
)


@dataclass(frozen=True)
class Layout:
    """One way of storing the rows, and the RUNNER engine DuckDB reads it with (or None)."""

    label: str
    lake: Path
    duckdb: str | None


def build_table(
    lake: Path, table_format: str, days: int, rows_per_file: int, days_per_commit: int
) -> float:
    """Write the rows of ``build_daily`` as a table lake, the way a sync does; seconds it took.

    Each window goes through a sync's steps: a ``PartitionWriter`` holds its rows,
    ``Staging.add`` stages them (a local Parquet file of the table's rows) and
    ``Staging.commit`` commits the staged windows in one table transaction and
    records them in the manifest. A commit holds ``days_per_commit`` days (one
    sync of that many days), staged on 8 threads as ``build_daily`` writes.
    """
    store = open_lake(lake, create=True)
    manifest = Manifest(store, warn_newer=False)
    start = time.perf_counter()
    for first in range(0, days, days_per_commit):
        jobs = [
            (sms_type, FIRST_DAY + timedelta(days=offset))
            for offset in range(first, min(days, first + days_per_commit))
            for sms_type in SMS_TYPES
        ]
        with store.lock():
            staging = Staging.open(store, table_format, new=not manifest.entries)
            assert staging is not None, f"{table_format} is a table format"
            with ThreadPoolExecutor(max_workers=8) as pool:
                staged = [
                    pool.submit(stage_window, staging, sms_type, day, rows_per_file)
                    for sms_type, day in jobs
                ]
                for window in staged:
                    window.result()
            staging.commit(manifest)
            manifest.compact()
    return time.perf_counter() - start


def stage_window(staging: Staging, sms_type: int, day: date, rows: int) -> None:
    """Stage one window's rows for the next commit, as a sync stages a verified window."""
    with PartitionWriter(staging.table.store, sms_type, day, order=ROW_ORDER) as writer:
        writer.write(type_day_frame(sms_type, day, rows))
        staging.add(writer, window_entry(sms_type, day, rows))


def window_entry(sms_type: int, day: date, rows: int) -> WindowEntry:
    """The manifest's entry of a window of ``rows`` rows, fetched in one request and settled."""
    return WindowEntry(sms_type, day, FETCHED_AT, rows, rows, 1, settled=True)


def build_delta_by_type(daily: Path, lake: Path, days: int, rows_per_file: int) -> float:
    """The rows as a Delta lake partitioned by ``sms_type`` alone, a month a commit; seconds.

    Each month is read from the daily Hive lake and appended: one file per (type,
    month), ``date`` a column inside them. Not what a sync writes (it partitions
    by day too): a layout whose partitions ``optimize.compact()`` can merge. The
    manifest (not timed) records the same windows as the other lakes'.
    """
    from deltalake import write_deltalake

    start = time.perf_counter()
    choose_table_format(open_lake(lake, create=True), DELTA, new=True)
    table = open_table(lake)
    assert table is not None
    for _, month in month_rows(daily, days):
        arrow = month.to_arrow().select(TABLE_SCHEMA.names).cast(TABLE_SCHEMA)
        write_deltalake(table.uri, arrow, mode="append", partition_by=["sms_type"])
    seconds = time.perf_counter() - start
    # A lake has a manifest (read_lake refuses a folder without one): the same windows.
    manifest = Manifest(table.store, warn_newer=False)
    for offset in range(days):
        for sms_type in SMS_TYPES:
            day = FIRST_DAY + timedelta(days=offset)
            manifest.record(window_entry(sms_type, day, rows_per_file))
    manifest.compact()
    return seconds


def optimize_delta(lake: Path) -> dict[str, Any]:
    """Run Delta's ``optimize.compact()`` on the whole table: its metrics, and seconds."""
    from deltalake import DeltaTable

    table = open_table(lake)
    assert table is not None
    start = time.perf_counter()
    metrics = DeltaTable(table.uri).optimize.compact()
    return {**metrics, "seconds": time.perf_counter() - start}


def compact_table(lake: Path) -> dict[str, Any]:
    """Run the project's ``compact()`` on every day (all settled): files removed, added, versions."""
    table = open_table(lake)
    assert table is not None
    before = table.version()
    start = time.perf_counter()
    done = table.compact(settled_before=date.max)
    return {
        "files_removed": done.files_removed,
        "files_added": done.files_added,
        "version_before": before,
        "version_after": table.version(),
        "seconds": time.perf_counter() - start,
    }


def data_files(lake: Path) -> int:
    """The data files a read of ``lake`` opens: the Hive files, or the table's live files."""
    table = open_table(lake)
    if table is None:
        return len(list(lake.rglob("*.parquet")))
    if table.name == DELTA:
        from deltalake import DeltaTable

        return len(DeltaTable(table.uri).file_uris())
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(CATALOG_NAME, uri=f"sqlite:///{Path(table.uri) / LOCAL_CATALOG}")
    return int(catalog.load_table(table.identifier).inspect.files().num_rows)


def duckdb_delivery(layout: Layout) -> pl.DataFrame:
    """DuckDB's report over ``layout``, with the SQL the runner times."""
    connection = duckdb.connect()
    if layout.duckdb == "duckdb":
        source = f"read_parquet('{layout.lake}/sms/**/*.parquet', hive_partitioning = true)"
    else:
        from deltalake import DeltaTable

        connection.register("sms", DeltaTable(f"{layout.lake}/delta").to_pyarrow_dataset())
        source = "sms"
    return comparable(connection.sql(DUCKDB_DELIVERY.format(source=source)).pl())


def comparable(report: pl.DataFrame) -> pl.DataFrame:
    """The shared columns, instants in UTC (DuckDB hands them back in its session's zone)."""
    return report.select(SHARED_COLUMNS).with_columns(
        pl.col("first_sent", "last_sent").dt.convert_time_zone("UTC")
    )


def check_reports(layouts: list[Layout]) -> int:
    """Assert that every layout's report, ours and DuckDB's, equals DuckDB's on the Hive files.

    Returns the rows of the report. Same rows, same order, same values (floats to
    polars' default tolerance).
    """
    expected = duckdb_delivery(layouts[0])
    for layout in layouts:
        ours = comparable(delivery_by_campaign(read_lake(layout.lake)))
        assert_frame_equal(ours, expected, check_dtypes=False)
        if layout.duckdb is not None:
            assert_frame_equal(duckdb_delivery(layout), expected, check_dtypes=False)
    return expected.height


def median_seconds(engine: str, lake: Path, repeats: int) -> float:
    """Median wall seconds of the report by ``engine`` over ``lake``, in a fresh interpreter."""
    try:
        runs = in_subprocess(RUNNER, engine, str(lake), str(repeats), REPORT)[REPORT]
    except RuntimeError as exc:
        raise RuntimeError(f"{engine} over {lake.name}: {exc}") from exc
    return float(statistics.median(runs))


def run(
    scratch: Path,
    days: int = DAYS,
    rows_per_file: int = ROWS_PER_FILE,
    repeats: int = REPEATS,
) -> dict[str, Any]:
    """Write every layout of the same rows, check that their reports agree, time each."""
    daily, delta, nightly, iceberg, monthly, by_type = (
        scratch / name
        for name in ("hive-daily", "delta", "delta-nightly", "iceberg", "hive-monthly", "by-type")
    )
    written = {
        daily: build_daily(daily, days, rows_per_file),
        delta: build_table(delta, DELTA, days, rows_per_file, days),
        nightly: build_table(nightly, DELTA, days, rows_per_file, 1),
        iceberg: build_table(iceberg, ICEBERG, days, rows_per_file, days),
    }
    written[monthly] = compact_monthly(daily, monthly, days)["seconds"]
    written[by_type] = build_delta_by_type(daily, by_type, days, rows_per_file)
    before = [
        Layout("Hive, daily files (the project's layout)", daily, "duckdb"),
        Layout("Delta by (type, day), one sync's commit", delta, "duckdb (delta)"),
        Layout(f"Delta by (type, day), a commit a night ({days:,})", nightly, "duckdb (delta)"),
        Layout("Iceberg by (type, day), one sync's commit", iceberg, None),
        Layout("Hive, monthly files (section 6's compaction)", monthly, "duckdb"),
        Layout("Delta by type alone, a commit a month", by_type, "duckdb (delta)"),
    ]
    checkpoints = len(list((nightly / "delta" / "_delta_log").glob("*.checkpoint.parquet")))
    report_rows = check_reports(before)
    timings = [measure(layout, written[layout.lake], repeats) for layout in before]
    # Compacted: each in place, checked again, timed again.
    compacted = compact_table(delta)
    iceberg_compacted = compact_table(iceberg)
    optimized = optimize_delta(by_type)
    after = [
        Layout("Delta by (type, day), after the project's `compact()`", delta, "duckdb (delta)"),
        Layout("Delta by type alone, after `optimize.compact()`", by_type, "duckdb (delta)"),
    ]
    check_reports([before[0], *after])
    timings += [
        measure(after[0], compacted["seconds"], repeats),
        measure(after[1], optimized["seconds"], repeats),
    ]
    return {
        "days": days,
        "rows_per_file": rows_per_file,
        "repeats": repeats,
        "rows": days * len(SMS_TYPES) * rows_per_file,
        "report_rows": report_rows,
        "checkpoints": checkpoints,
        "layouts": timings,
        "compacted": compacted,
        "iceberg_compacted": iceberg_compacted,
        "optimized": optimized,
    }


def measure(layout: Layout, written_seconds: float, repeats: int) -> dict[str, Any]:
    """The layout's files and report seconds, ours and DuckDB's (None where not measured)."""
    return {
        "layout": layout.label,
        "files": data_files(layout.lake),
        "written_seconds": written_seconds,
        "ours": median_seconds("esms-analytics", layout.lake, repeats),
        "duckdb": (median_seconds(layout.duckdb, layout.lake, repeats) if layout.duckdb else None),
    }


def tables_section(tables: dict[str, Any]) -> list[str]:
    """The report on each layout of the same rows, against DuckDB on the Hive files."""
    layouts = {layout["layout"]: layout for layout in tables["layouts"]}
    rows = list(layouts.values())
    hive, delta, nightly, iceberg, monthly, by_type, compacted, optimized = rows
    baseline = hive["duckdb"]
    alone = (
        "Run on its own (`python -m benchmarks.bench_tables`, at `make bench` sizes) and "
        "spliced in by hand, not in the same run as the other sections; load average when "
        "it ended (1, 5, 15 minutes): "
        + ", ".join(f"{load:.1f}" for load in tables["load"])
        + f" on {os.cpu_count()} cores. "
        if tables.get("load")
        else ""
    )
    lines = [
        "## 9. Table formats: a 3-year x 7-type report",
        "",
        f"{alone}The rows of section 6: every SmsType (7), {tables['rows_per_file']} rows per "
        f"type and day, {tables['days']:,} days ({tables['rows']:,} rows), one (type, day) "
        "window each, written once per layout. The Delta and Iceberg tables are built "
        "through a sync's own steps (each window held by a `PartitionWriter`, staged by "
        "the sync's `Staging`, committed with the manifest), in one commit for all windows "
        "(a first sync) or one commit per day (what nightly syncs leave). Ours is "
        "`delivery_by_campaign(read_lake(lake))` on every layout (`read_lake` reads Hive, "
        "Delta and Iceberg lakes), in a fresh interpreter, median of "
        f"{tables['repeats']} runs after a warm-up. DuckDB runs the same report in SQL "
        "(`bench_reports.DUCKDB_DELIVERY`) over "
        "`read_parquet('<lake>/sms/**/*.parquet', hive_partitioning = true)` for Hive "
        "files and over `DeltaTable('<lake>/delta').to_pyarrow_dataset()` for Delta (the "
        "log read on every run, as ours reads it); not over Iceberg. Before any timing, "
        "every layout's report, ours and DuckDB's, is asserted to hold the same "
        f"{tables['report_rows']} rows as DuckDB's over the daily Hive files (campaign, "
        "counts, first and last sent, provisional, rates; same order): they all did.",
        "",
        "| layout | files | written in s | ours s | vs DuckDB on Hive daily files "
        "| DuckDB on this layout s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for layout in rows:
        duck = "" if layout["duckdb"] is None else f"{layout['duckdb']:.3f}"
        lines.append(
            f"| {layout['layout']} | {layout['files']:,} | {layout['written_seconds']:.1f} | "
            f"{layout['ours']:.3f} | {layout['ours'] / baseline:.2f}x | {duck} |"
        )
    done, iceberg_done, merged = (
        tables["compacted"],
        tables["iceberg_compacted"],
        tables["optimized"],
    )
    # Compaction merges files within a partition only: a sync leaves one file in each.
    nothing_to_merge = (
        "a sync leaves exactly one live file in each (type, day) partition and compaction "
        "merges files only within a partition, so there was nothing to merge"
        if done["files_removed"] == 0
        else "some partitions held more than one file"
    )
    lines += [
        "",
        "Written in: the Hive files on 8 writers, the table windows staged on 8 threads, "
        "commits included; for a compacted layout, the compaction from the layout it was "
        "made of (monthly Hive and Delta by type: from the daily Hive lake; after a "
        "compaction: the call alone). vs DuckDB: our time over DuckDB's on the daily Hive "
        "files (below 1x is faster).",
        "",
        f"- The same {hive['files']:,} files, three formats: our report on Delta takes "
        f"{times(delta, hive)} its time on Hive, on Iceberg {times(iceberg, hive)}. The "
        f"Delta table of {tables['days']:,} daily commits ({tables['checkpoints']} "
        "checkpoints, which delta-rs writes every 100 commits) against the one of one "
        f"commit: {times(nightly, delta)}.",
        f"- Compaction of the (type, day) table: the project's `compact()` (Delta's "
        f"`optimize.compact()` on the settled days) removed {done['files_removed']} files "
        f"and added {done['files_added']} (table version {done['version_before']} before, "
        f"{done['version_after']} after): {nothing_to_merge}. The report after it takes "
        f"{compacted['ours']:.3f} s ({times(compacted, delta)} before it). Iceberg's "
        f"`compact()` removed {iceberg_done['files_removed']} files and added "
        f"{iceberg_done['files_added']}.",
        f"- Coarser files: the same rows as {monthly['files']:,} monthly Hive files "
        f"(section 6's compaction): {monthly['ours']:.3f} s, {times(monthly, hive)} the "
        f"daily files' time. A Delta table partitioned by type alone, a month appended a "
        f"commit ({by_type['files']:,} files): {by_type['ours']:.3f} s; its "
        f"`optimize.compact()` removed {merged['numFilesRemoved']} files and added "
        f"{merged['numFilesAdded']} in {merged['seconds']:.1f} s, and the report then "
        f"takes {optimized['ours']:.3f} s, {times(optimized, hive)} the daily Hive "
        "files' time. What it costs: a sync replaces a (type, day) partition whole; in a "
        "table partitioned by type alone, the replace of one re-fetched day is a delete "
        "that rewrites the files holding that day (section 6 says what a monthly Hive "
        "layout would cost).",
        f"- DuckDB over the Delta table through Arrow: {delta['duckdb']:.3f} s, "
        f"{delta['duckdb'] / hive['duckdb']:.2f}x its time over the Hive files.",
        "",
    ]
    return lines


def times(layout: dict[str, Any], reference: dict[str, Any]) -> str:
    """Our report time on ``layout`` as a multiple of the one on ``reference``."""
    return f"{layout['ours'] / reference['ours']:.2f}x"


def main() -> None:
    """Run this benchmark alone at ``make bench`` sizes and print its section."""
    with tempfile.TemporaryDirectory() as scratch:
        results = run(Path(scratch), DAYS, ROWS_PER_FILE, REPEATS)
    print("\n".join(tables_section({**results, "load": os.getloadavg()})))


if __name__ == "__main__":
    main()
