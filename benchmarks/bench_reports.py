"""Reports over a large lake: ours against DuckDB SQL and pandas on the same files, and Spark.

Spark runs the project's own report functions on a Spark DataFrame over the
lake (Narwhals hands them to Spark): its time is reported beside the others;
its peak RSS is the Python driver's only (the work happens in the JVM).

The lake is written with the project's own lake code (``write_partition``) from
canonical frames generated with vectorised Polars expressions. Each engine runs
in a fresh interpreter, so its peak memory is its own: five timed runs after
one warm-up, medians compared within the same run of ``make bench``.

The overhead of writing the reports once for every engine is measured apart:
each report in the package against the same report in pure Polars as it was
before Narwhals (:mod:`benchmarks.polars_reports_before`), both on
``read_lake(lake)``, in one process, alternating run by run so that both meet
the same passing load. Their results are checked equal before they are timed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import in_subprocess
from esms_analytics.codes import CARRIERS as CARRIER_LABELS
from esms_analytics.codes import VN_TZ
from esms_analytics.decode import SCHEMA
from esms_analytics.lake import write_partition

CAMPAIGNS = [f"Chiến dịch {n:02d}" for n in range(40)] + ["OTP đăng nhập", "Nhắc lịch hẹn"]
CARRIERS = list(CARRIER_LABELS)
FIRST_DAY = date(2026, 1, 1)


def day_frame(day: date, sms_type: int, rows: int, seed: int) -> pl.DataFrame:
    """``rows`` canonical rows for one (type, day), deterministic in ``seed``."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=VN_TZ).timestamp() * 1_000_000)
    i = pl.int_range(0, rows, eager=True).alias("i")
    hashed = i.hash(seed)
    frame = pl.DataFrame({"i": i, "h": hashed})
    label = {1: "advertising", 2: "customer_care"}[sms_type]
    return frame.select(
        sms_id=(pl.col("i") // 3 + day.toordinal() * 1_000_000).cast(pl.Int64),
        reference_id=pl.col("h").cast(pl.String),
        campaign=pl.lit(pl.Series(CAMPAIGNS)).gather(pl.col("h") % len(CAMPAIGNS)),
        content=pl.when(pl.col("h") % 3 == 0)
        .then(pl.lit("Mã OTP của bạn là 123456"))
        .otherwise(pl.lit("Ma OTP cua ban la 123456. Khong chia se ma nay.")),
        phone=pl.lit("09") + (pl.col("h") % 100_000_000).cast(pl.String).str.zfill(8),
        phone_e164=pl.lit("+849") + (pl.col("h") % 100_000_000).cast(pl.String).str.zfill(8),
        carrier=pl.lit(pl.Series(CARRIERS)).gather((pl.col("h") // 7) % 8),
        sell_price=((pl.col("h") // 11) % 3 * 50 + 700).cast(pl.Float64),
        sms_type=pl.lit(sms_type, pl.Int16),
        sms_type_label=pl.lit(label),
        send_status=pl.when((pl.col("h") // 13) % 50 == 0).then(7).otherwise(5).cast(pl.Int8),
        send_status_label=pl.when((pl.col("h") // 13) % 50 == 0)
        .then(pl.lit("awaiting_report"))
        .otherwise(pl.lit("sent")),
        send_result=pl.when((pl.col("h") // 13) % 50 == 0)
        .then(2)
        .when((pl.col("h") // 17) % 20 == 0)
        .then(0)
        .otherwise(1)
        .cast(pl.Int8),
        send_result_label=pl.when((pl.col("h") // 13) % 50 == 0)
        .then(pl.lit("pending"))
        .when((pl.col("h") // 17) % 20 == 0)
        .then(pl.lit("failed"))
        .otherwise(pl.lit("delivered")),
        is_final=(pl.col("h") // 13) % 50 != 0,
        sent_at=pl.from_epoch(start + (pl.col("h") % 86_400_000_000), time_unit="us")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone("Asia/Ho_Chi_Minh"),
        encoding=pl.when(pl.col("h") % 3 == 0).then(pl.lit("ucs2")).otherwise(pl.lit("gsm7")),
        segments=pl.lit(1, pl.Int16),
        length=pl.when(pl.col("h") % 3 == 0).then(24).otherwise(46).cast(pl.Int32),
    ).cast(dict(SCHEMA))  # type: ignore[arg-type]


def build_lake(lake: Path, rows: int, days: int = 100) -> dict[str, float]:
    """Write ``rows`` rows over ``days`` days and two types; returns sizes."""
    per_partition = rows // (days * 2)
    in_memory = 0.0
    for offset in range(days):
        day = FIRST_DAY + timedelta(days=offset)
        for sms_type in (1, 2):
            frame = day_frame(day, sms_type, per_partition, seed=offset * 10 + sms_type)
            in_memory += frame.estimated_size()
            write_partition(lake, sms_type, day, frame, fetched_at=datetime.now(VN_TZ))
    disk = sum(path.stat().st_size for path in lake.rglob("*.parquet"))
    return {
        "rows": per_partition * days * 2,
        "in_memory_mb": in_memory / 2**20,
        "disk_mb": disk / 2**20,
    }


#: DuckDB's ``delivery_by_campaign`` over ``{source}`` (a table function or a registered name).
DUCKDB_DELIVERY = """
    WITH g AS (
      SELECT CASE WHEN campaign IS NULL OR trim(campaign) = '' THEN '(no campaign)'
                  ELSE trim(campaign) END AS campaign,
             count(*) AS messages,
             count(*) FILTER (WHERE send_result = 1) AS delivered,
             count(*) FILTER (WHERE send_result = 0) AS failed,
             count(*) FILTER (WHERE send_result IS NULL OR send_result NOT IN (0, 1))
                 AS pending,
             min(sent_at) AS first_sent, max(sent_at) AS last_sent,
             bool_or(NOT is_final) AS provisional
      FROM {source} GROUP BY 1)
    SELECT *, CASE WHEN delivered + failed > 0
                   THEN delivered / (delivered + failed) END AS delivery_rate,
           pending / messages AS pending_share
    FROM g ORDER BY messages DESC, campaign"""

# Arguments: engine, lake, repeats, and optionally the reports to time (comma-separated
# names; all of them without it). "duckdb (delta)" reads a Delta lake's table.
RUNNER = """
import json, sys, time
engine, lake, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
wanted = sys.argv[4].split(",") if len(sys.argv) > 4 else None
if engine == "esms-analytics":
    from esms_analytics import cost_breakdown, delivery_by_campaign, read_lake
    def delivery(): return delivery_by_campaign(read_lake(lake))
    def cost(): return cost_breakdown(read_lake(lake), by="carrier")
elif engine == "spark (esms-analytics)":
    # The same report functions, handed a Spark DataFrame over the lake: Spark plans
    # and runs them (local[2]); collect() brings the few result rows back.
    import os
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession
    from esms_analytics import cost_breakdown, delivery_by_campaign
    spark = (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    def delivery(): return delivery_by_campaign(spark.read.parquet(f"{lake}/sms")).collect()
    def cost(): return cost_breakdown(spark.read.parquet(f"{lake}/sms"), by="carrier").collect()
elif engine in ("duckdb", "duckdb (delta)"):
    import duckdb
    connection = duckdb.connect()
    if engine == "duckdb":
        def source(): return f"read_parquet('{lake}/sms/**/*.parquet', hive_partitioning = true)"
    else:
        from deltalake import DeltaTable
        def source():
            # The table's current version as an Arrow dataset: its log is read on every
            # run, as read_lake reads it.
            connection.register("sms", DeltaTable(f"{lake}/delta").to_pyarrow_dataset())
            return "sms"
    def delivery():
        return connection.sql(DUCKDB_DELIVERY.format(source=source())).fetchall()
    def cost():
        return connection.sql(f'''
            WITH g AS (
              SELECT carrier, count(*) AS messages,
                     count(*) FILTER (WHERE send_result = 1) AS delivered,
                     sum(segments) AS segments, sum(coalesce(sell_price, 0)) AS cost_vnd,
                     coalesce(sum(sell_price) FILTER (WHERE send_result = 1), 0) AS cost_delivered,
                     coalesce(sum(sell_price) FILTER (WHERE send_result = 0), 0) AS cost_failed
              FROM {source()} GROUP BY 1)
            SELECT *, cost_vnd / nullif(delivered, 0) AS cost_per_delivered,
                   cost_vnd / sum(cost_vnd) OVER () AS share
            FROM g ORDER BY cost_vnd DESC''').fetchall()
else:
    import pandas as pd
    def load(columns):
        return pd.read_parquet(f"{lake}/sms", columns=columns)
    def delivery():
        frame = load(["campaign", "send_result", "is_final", "sent_at"])
        name = frame["campaign"].fillna("").str.strip()
        frame["campaign"] = name.where(name != "", "(no campaign)")
        frame["delivered"] = frame["send_result"] == 1
        frame["failed"] = frame["send_result"] == 0
        frame["pending"] = ~(frame["delivered"] | frame["failed"])
        frame["open"] = ~frame["is_final"]
        out = frame.groupby("campaign").agg(
            messages=("send_result", "size"), delivered=("delivered", "sum"),
            failed=("failed", "sum"), pending=("pending", "sum"),
            first_sent=("sent_at", "min"), last_sent=("sent_at", "max"),
            provisional=("open", "any"))
        out["delivery_rate"] = out["delivered"] / (out["delivered"] + out["failed"])
        return out.sort_values("messages", ascending=False)
    def cost():
        frame = load(["carrier", "send_result", "segments", "sell_price"])
        price = frame["sell_price"].fillna(0.0)
        frame["cost_delivered"] = price.where(frame["send_result"] == 1, 0.0)
        frame["cost_failed"] = price.where(frame["send_result"] == 0, 0.0)
        frame["delivered"] = frame["send_result"] == 1
        out = frame.groupby("carrier").agg(
            messages=("send_result", "size"), delivered=("delivered", "sum"),
            segments=("segments", "sum"), cost_vnd=("sell_price", "sum"),
            cost_delivered=("cost_delivered", "sum"), cost_failed=("cost_failed", "sum"))
        out["share"] = out["cost_vnd"] / out["cost_vnd"].sum()
        return out.sort_values("cost_vnd", ascending=False)
results = {}
for name, action in (("delivery_by_campaign", delivery), ("cost_breakdown(carrier)", cost)):
    if wanted is not None and name not in wanted:
        continue
    action()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter(); action(); runs.append(time.perf_counter() - start)
    results[name] = sorted(runs)
results["peak_rss_mb"] = float(next(line.split()[1] for line in open("/proc/self/status")
                 if line.startswith("VmHWM"))) / 1024
print(json.dumps(results), flush=True)
# Measured and said: leave without tearing down the native thread pools (Arrow's, DuckDB's,
# delta-rs'), which now and then abort at exit under load ("terminate called without an
# active exception", apache/arrow#34314) and would fail a run whose numbers are in. Spark
# leaves normally: its exit handlers stop the JVM.
if not engine.startswith("spark"):
    import os
    os._exit(0)
""".replace("DUCKDB_DELIVERY", repr(DUCKDB_DELIVERY))

ENGINES = ("esms-analytics", "duckdb", "pandas", "spark (esms-analytics)")

OVERHEAD_RUNNER = """
import json, sys, time
import esms_analytics as now
from benchmarks import polars_reports_before as before
from benchmarks.bench_reports import OVERHEAD_CASES
lake, repeats = sys.argv[1], int(sys.argv[2])
results = {}
for name, (function, options) in OVERHEAD_CASES.items():
    actions = {
        "before": lambda: getattr(before, function)(now.read_lake(lake), **options),
        "now": lambda: getattr(now, function)(now.read_lake(lake), **options),
    }
    # Like for like: the same rows, values and order (dtypes as each version declares).
    mine, theirs = actions["now"](), actions["before"]()
    if not mine.equals(theirs.cast(dict(mine.schema))):
        sys.exit(f"{name}: the report differs from the one before Narwhals")
    runs = {version: {"wall": [], "cpu": []} for version in actions}
    # Alternating, so both meet the same passing load; CPU time (this process and
    # Polars' threads) is what the neighbours of a shared machine move least.
    for _ in range(repeats):
        for version, action in actions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            action()
            runs[version]["wall"].append(time.perf_counter() - wall)
            runs[version]["cpu"].append(time.process_time() - cpu)
    results[name] = runs
print(json.dumps(results))
"""

#: Every report, and each period of the trend, timed against the pure-Polars code before.
OVERHEAD_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "delivery_by_campaign": ("delivery_by_campaign", {}),
    "cost_breakdown(carrier)": ("cost_breakdown", {"by": "carrier"}),
    "delivery_trend(1d)": ("delivery_trend", {"every": "1d"}),
    "delivery_trend(1w)": ("delivery_trend", {"every": "1w"}),
    "delivery_trend(1mo)": ("delivery_trend", {"every": "1mo"}),
    "carrier_performance": ("carrier_performance", {}),
    "failure_hotspots": ("failure_hotspots", {}),
}


def run(lake: Path, rows: int = 20_000_000, repeats: int = 5) -> dict[str, Any]:
    sizes = build_lake(lake, rows)
    engines = {engine: in_subprocess(RUNNER, engine, str(lake), str(repeats)) for engine in ENGINES}
    # Three times the repeats: the differences sought are a few percent.
    overhead = in_subprocess(OVERHEAD_RUNNER, str(lake), str(3 * repeats))
    return {"sizes": sizes, "engines": engines, "overhead": overhead}
