"""Many small files: a report over 630 / 2,555 / 7,665 daily partition files against DuckDB.

A lake of every SmsType (7) and ``rows_per_file`` rows a day is written once
with the project's own lake code for the longest span; the shorter spans are
copies of its first days, so each engine lists only the files it reads. Each
engine runs in a fresh interpreter (``bench_reports.RUNNER``): the report is
``delivery_by_campaign`` (and ``cost_breakdown`` by carrier), DuckDB runs the
same SQL over ``read_parquet('.../sms/**/*.parquet')``.

The same rows are also written as one file per (type, month), each stored as
the partition of the month's first day so that both engines read it unchanged
(neither report reads ``date``): what a monthly compaction of settled days
would gain, and what writing it costs.

Run on its own (section 6 of BENCHMARKS.md, printed for splicing by hand)::

    python -m benchmarks.bench_files
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.bench_reports import RUNNER, day_frame
from benchmarks.common import in_subprocess
from esms_analytics.codes import SMS_TYPES, VN_TZ
from esms_analytics.decode import SMS_TYPE_LABEL_DTYPE
from esms_analytics.lake import lake_inventory, partition_key, read_lake, write_partition

FIRST_DAY = date(2024, 1, 1)
SPANS = (90, 365, 1095)
#: Rows per type and day, and timed runs, at `make bench` sizes.
ROWS_PER_FILE = 100
REPEATS = 5
ENGINES = ("esms-analytics", "duckdb")
FETCHED_AT = datetime(2027, 1, 1, tzinfo=VN_TZ)


def type_day_frame(sms_type: int, day: date, rows: int) -> pl.DataFrame:
    """Canonical rows of one (type, day): bench_reports' generator, relabelled."""
    frame = day_frame(day, 2, rows, seed=day.toordinal() * 31 + sms_type)
    return frame.with_columns(
        sms_type=pl.lit(sms_type, pl.Int16),
        sms_type_label=pl.lit(SMS_TYPES[sms_type]).cast(SMS_TYPE_LABEL_DTYPE),
    )


def build_daily(lake: Path, days: int, rows_per_file: int) -> float:
    """One file per (type, day) for ``days`` days; seconds it took (8 writers at once)."""
    start = time.perf_counter()
    jobs = [
        (sms_type, FIRST_DAY + timedelta(days=offset))
        for offset in range(days)
        for sms_type in SMS_TYPES
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in pool.map(
            lambda job: write_partition(
                lake, job[0], job[1], type_day_frame(*job, rows_per_file), fetched_at=FETCHED_AT
            ),
            jobs,
        ):
            pass
    return time.perf_counter() - start


def copy_first_days(source: Path, target: Path, days: int) -> None:
    """A lake holding the first ``days`` days of ``source``: the same files, copied."""
    for offset in range(days):
        for sms_type in SMS_TYPES:
            day = FIRST_DAY + timedelta(days=offset)
            key = partition_key(sms_type, day)
            shutil.copytree(source / key, target / key)


def compact_monthly(daily: Path, monthly: Path, days: int) -> dict[str, float]:
    """Rewrite the daily lake as one file per (type, month): files written and seconds.

    Each month is read back with ``read_lake`` and written with ``write_partition``,
    as a compaction inside the project would do it.
    """
    start = time.perf_counter()
    months = 0
    for month, rows in month_rows(daily, days):
        months += 1
        for sms_type in SMS_TYPES:
            frame = rows.filter(pl.col("sms_type") == sms_type).drop("date")
            write_partition(monthly, sms_type, month, frame, fetched_at=FETCHED_AT)
    return {"files": months * len(SMS_TYPES), "seconds": time.perf_counter() - start}


def month_rows(daily: Path, days: int) -> Iterator[tuple[date, pl.DataFrame]]:
    """Each month of the first ``days`` days, its first day and its rows read from ``daily``."""
    months = sorted({(FIRST_DAY + timedelta(days=n)).replace(day=1) for n in range(days)})
    for month in months:
        following = (month + timedelta(days=32)).replace(day=1)
        yield month, read_lake(daily, start=month, end=following - timedelta(days=1)).collect()


def disk_bytes(lake: Path) -> int:
    return sum(file.stat().st_size for file in lake.rglob("*.parquet"))


def listing_seconds(lake: Path, repeats: int) -> float:
    """Median seconds of ``lake_inventory`` (what read_lake does before the scan), warm."""
    lake_inventory(lake)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        lake_inventory(lake)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def run(
    scratch: Path, rows_per_file: int = 100, repeats: int = 3, spans: tuple[int, ...] = SPANS
) -> dict[str, Any]:
    """Time both engines over each span of daily files, and over the monthly files."""
    longest = max(spans)
    full = scratch / f"daily-{longest}"
    build_seconds = build_daily(full, longest, rows_per_file)
    # layout -> (lake, days of rows in it)
    lakes: dict[str, tuple[Path, int]] = {}
    for span in spans:
        lake = full if span == longest else scratch / f"daily-{span}"
        if span != longest:
            copy_first_days(full, lake, span)
        lakes[f"daily, {span} days"] = (lake, span)
    monthly = scratch / "monthly"
    compaction = compact_monthly(full, monthly, longest)
    lakes[f"monthly, {longest} days"] = (monthly, longest)
    layouts = []
    for label, (lake, days) in lakes.items():
        files = len(list(lake.rglob("*.parquet")))
        engines = {
            engine: in_subprocess(RUNNER, engine, str(lake), str(repeats)) for engine in ENGINES
        }
        layouts.append(
            {
                "layout": label,
                "files": files,
                "rows": days * len(SMS_TYPES) * rows_per_file,
                "disk_mb": disk_bytes(lake) / 1e6,
                "listing_seconds": listing_seconds(lake, repeats),
                "seconds": {
                    engine: {
                        report: sorted(runs)[len(runs) // 2]
                        for report, runs in data.items()
                        if report != "peak_rss_mb"
                    }
                    for engine, data in engines.items()
                },
            }
        )
    return {
        "rows_per_file": rows_per_file,
        "repeats": repeats,
        "build_seconds": build_seconds,
        "compaction": compaction,
        "layouts": layouts,
    }


def files_section(files: dict[str, Any]) -> list[str]:
    """Report time over more and more daily files, against DuckDB; and monthly files."""
    report = "delivery_by_campaign"
    layouts = files["layouts"]
    alone = (
        "Run on its own (`python -m benchmarks.bench_files`, at `make bench` sizes) and "
        "spliced in by hand, not in the same run as the other sections. "
        if files.get("alone")
        else ""
    )
    lines = [
        "## 6. Many small files",
        "",
        f"{alone}Every SmsType (7), {files['rows_per_file']} rows per type and day, written "
        "with the project's lake code; shorter spans are copies of the first days. Each "
        f"engine runs in a fresh interpreter; medians of {files['repeats']} runs after a "
        "warm-up. Ours is `delivery_by_campaign(read_lake(lake))`, listing and scan "
        "included: one listing of the lake (`os.walk`, or the object store's list), then "
        "the scan, with no read of any file before it (a damaged file is looked for only "
        "after a scan failed on it). DuckDB runs the same report in SQL over "
        "`read_parquet('<lake>/sms/**/*.parquet', hive_partitioning = true)`. Listing is "
        "`lake_inventory` alone, in-process.",
        "",
        f"| layout | files | rows | MB on disk | ours {report} s | of which listing s "
        "| DuckDB s | ours ms/file | DuckDB ms/file |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layout in layouts:
        ours, duck = (layout["seconds"][engine][report] for engine in ENGINES)
        lines.append(
            f"| {layout['layout']} | {layout['files']:,} | {layout['rows']:,} | "
            f"{layout['disk_mb']:.1f} | {ours:.3f} | {layout['listing_seconds']:.3f} | "
            f"{duck:.3f} | {1000 * ours / layout['files']:.3f} | "
            f"{1000 * duck / layout['files']:.3f} |"
        )
    daily = [layout for layout in layouts if layout["layout"].startswith("daily")]
    fewest, most = daily[0], daily[-1]
    extra = most["files"] - fewest["files"]
    slopes = {
        engine: 1000 * (most["seconds"][engine][report] - fewest["seconds"][engine][report]) / extra
        for engine in ENGINES
    }
    monthly = layouts[-1]
    gains = {
        engine: most["seconds"][engine][report] / monthly["seconds"][engine][report]
        for engine in ENGINES
    }
    compaction = files["compaction"]
    lines += [
        "",
        f"- Cost of one more file (the slope from {fewest['files']:,} to {most['files']:,} "
        f"files): ours {slopes['esms-analytics']:.3f} ms, DuckDB {slopes['duckdb']:.3f} ms.",
        "",
        "### What a monthly compaction of settled days would gain and cost",
        "",
        f"The same {monthly['rows']:,} rows as {monthly['files']:,} monthly files instead of "
        f"{most['files']:,} daily ones: `{report}` runs {gains['esms-analytics']:.1f}x faster "
        f"for us and {gains['duckdb']:.1f}x for DuckDB, and takes "
        f"{monthly['disk_mb']:.1f} MB instead of {most['disk_mb']:.1f} MB (each file repeats "
        "its footer, dictionaries and statistics). Writing the monthly files from the "
        f"daily ones (`read_lake` + `write_partition` per month and type) took "
        f"{compaction['seconds']:.1f} s for the {compaction['files']:.0f} files, "
        f"{1000 * compaction['seconds'] / compaction['files']:.0f} ms a file.",
        "",
        'What it would cost beyond that: it changes the layout contract (README, "The '
        'lake"): a partition would no longer be exactly one service window, so a re-fetch '
        "of one settled day (`sync --refresh`) rewrites its whole month, the manifest "
        "needs to say which days a month file holds, `date` must be stored inside the "
        "files (readers lose day pruning from paths and filter on the column instead), and "
        "the atomic replace must cover a month. Only settled days can be compacted, so "
        "the last weeks stay daily and readers see both layouts. Not part of issue 16.",
        "",
    ]
    return lines


def main() -> None:
    """Run this benchmark alone at ``make bench`` sizes and print its section."""
    with tempfile.TemporaryDirectory() as scratch:
        results = run(Path(scratch), ROWS_PER_FILE, REPEATS, SPANS)
    print("\n".join(files_section({**results, "alone": True})))


if __name__ == "__main__":
    main()
