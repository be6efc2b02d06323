"""Write the notebooks in notebooks/ from the cells below and execute them in place.

``make notebooks`` runs this, so the committed notebooks carry fresh outputs and
read as documentation; the test suite executes them again to prove they still run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: The kernel `make notebook` registers in the project's .venv (see the Makefile).
KERNEL = "esms-analytics"
#: Output types that only a live Jupyter front end can show: never committed.
WIDGET_TYPES = (
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
)

SETUP = """\
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

import esms_analytics as esms
from esms_analytics.render import pretty  # rates as %, VND as whole numbers, as the reports

pl.Config.set_tbl_rows(12)
pl.Config.set_fmt_str_lengths(40);"""

START_SIMULATOR = """\
# The embedded eSMS simulator: a real HTTP server on loopback with a seeded history.
# With a real account, use esms.EsmsClient() instead (keys from ESMS_API_KEY / ESMS_SECRET_KEY).
sim = esms.simulator.Simulator(days=60, daily_volume=1500).start()
client = sim.client()
client"""

OPEN_LAKE = """\
# Your lake: the one `make demo` (or your own `esms-analytics sync`) filled. Without one,
# 60 days from the embedded eSMS simulator (a real HTTP server on loopback) go into a
# scratch folder, so the notebook runs anywhere.
DEMO_LAKE = Path("../data/lake")
sim = None
if (DEMO_LAKE / "sms").is_dir():
    lake_path = DEMO_LAKE
else:
    sim = esms.simulator.Simulator(days=60, daily_volume=1500).start()
    lake_path = Path(tempfile.mkdtemp()) / "lake"
    with sim.client() as client:
        esms.sync(lake_path, sim.today - timedelta(days=59), sim.today, client=client,
                  progress=False)
lake = esms.read_lake(lake_path)  # a LazyFrame: nothing is read until a report collects it
today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date()
start = today - timedelta(days=29)  # the last 30 days, today included
period = f"{start} – {today} (Vietnam time)"
print(("the demo lake" if sim is None else "a simulator lake"), "·", period)"""

STOP = """\
client.close()
sim.stop()"""

SPARK_SESSION = """\
import warnings

from pyspark.sql import SparkSession

# PySpark 4 warns about pandas 3 on import; these reports never use its pandas API.
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
spark = SparkSession.builder.getOrCreate()  # SPARK_REMOTE set: that server; else local"""

CLOSE_LAKE = """\
if sim is not None:
    sim.stop()"""

CELLS: dict[str, list[tuple[str, str]]] = {
    "01_quickstart": [
        (
            "md",
            "# Quickstart: from eSMS to a typed DataFrame\n\n"
            "One client, one call, one Polars DataFrame. This notebook runs against the "
            "project's eSMS simulator, so it needs no account; with a real account only the "
            "client line changes.",
        ),
        ("code", SETUP),
        ("code", START_SIMULATOR),
        (
            "md",
            "The client's repr never shows the keys. `fetch_days` walks every page of every day "
            "in the range (1-based pages of up to 500 rows), checks each day against the "
            "service's `CountTotal` and decodes it.",
        ),
        (
            "code",
            "week = esms.fetch_days(client, sim.today - timedelta(days=7), sim.today - timedelta(days=1),"
            " sms_types=[2])\nweek.head()",
        ),
        (
            "md",
            "## The decoded columns\n\nOne declared schema, `esms.SCHEMA`, for every frame "
            "and every file in the lake. Raw codes sit beside their labels.",
        ),
        ("code", "esms.SCHEMA"),
        (
            "md",
            "Phone numbers arrive as `0…`, `84…`, `+84…` or in the old 11-digit form; "
            "`phone_e164` normalises them and `carrier` is estimated from the prefix (the "
            "carrier that first issued the number).",
        ),
        (
            "code",
            'week.select("phone", "phone_e164", "carrier").filter(\n'
            '    ~pl.col("phone").str.starts_with("0") | (pl.col("phone").str.len_chars()'
            " == 11)\n).head(8)",
        ),
        (
            "md",
            "`SentTime` comes as `/Date(1705484048995+0700)/`: milliseconds since the epoch "
            "in UTC; the `+0700` only names the server's zone. `sent_at` is a real "
            "time-zone-aware datetime in Vietnam time.",
        ),
        (
            "code",
            "page = client.get_page(esms.Window.for_day(sim.today - timedelta(days=1)), "
            "sms_type=2, page_size=2)\n"
            "print(page.count_total, 'rows in the window;', page.pages_total, "
            "'pages of 2')\n"
            "page.rows[0]",
        ),
        (
            "code",
            'esms.decode_rows(page.rows).select("sent_at", "send_status_label", '
            '"send_result_label", "is_final", "encoding", "segments")',
        ),
        ("md", "## What happened to them"),
        (
            "code",
            'week.group_by("send_result_label").agg(pl.len().alias("messages"))'
            '.sort("messages", descending=True)',
        ),
        ("code", STOP),
    ],
    "02_delivery_by_campaign": [
        (
            "md",
            "# Delivery by campaign\n\n"
            "Which campaigns delivered over the last 30 days? `delivery_rate` = delivered / "
            "(delivered + failed): messages still waiting for a carrier report are left out, "
            "and campaigns with such messages are marked `provisional`.",
        ),
        ("code", "%matplotlib inline\n" + SETUP + "\nfrom esms_analytics import plots"),
        ("code", OPEN_LAKE),
        (
            "code",
            "delivery = esms.delivery_by_campaign(lake, start=start, end=today)\npretty(delivery)",
        ),
        (
            "md",
            "The 95% Wilson interval stays honest for small campaigns. Provisional campaigns "
            "can still move:",
        ),
        (
            "code",
            'pretty(delivery.filter("provisional").select("campaign", "messages", "pending", '
            '"delivery_rate", "last_sent"))',
        ),
        ("code", "plots.plot_delivery_by_campaign(delivery, subtitle=period)"),
        ("md", "## Trend and carriers"),
        (
            "code",
            'weekly = esms.delivery_trend(lake, every="1w", start=start, end=today)\n'
            "plots.plot_delivery_trend(weekly, subtitle=period, "
            "covered=(start, today - timedelta(days=1)))",
        ),
        (
            "code",
            'by_carrier = esms.delivery_trend(lake, every="1w", by="carrier", start=start, '
            "end=today)\n"
            "plots.plot_delivery_trend(by_carrier, subtitle=period, "
            "covered=(start, today - timedelta(days=1)))",
        ),
        (
            "code",
            "carriers = esms.carrier_performance(lake, sms_types=[1, 2], start=start, end=today)\n"
            "pretty(carriers)",
        ),
        (
            "code",
            'plots.plot_carrier_performance(carriers, subtitle=period + " · advertising, '
            'customer_care")',
        ),
        ("md", "## Where failures concentrate"),
        (
            "code",
            "hotspots = esms.failure_hotspots(lake, min_messages=200, top=10, start=start, "
            "end=today)\n"
            "plots.plot_failure_hotspots(hotspots, subtitle=period)",
        ),
        ("code", CLOSE_LAKE),
    ],
    "03_costs": [
        (
            "md",
            "# What it cost\n\n"
            "Costs are `sell_price` as eSMS reports it, in VND. Whether failed messages are "
            "billed, and whether long messages cost per segment, is not documented by eSMS: "
            "these reports show what the data says.",
        ),
        ("code", "%matplotlib inline\n" + SETUP + "\nfrom esms_analytics import plots"),
        ("code", OPEN_LAKE),
        (
            "code",
            'by_type = esms.cost_breakdown(lake, by="sms_type", totals=True, start=start, '
            "end=today)\npretty(by_type)",
        ),
        (
            "md",
            "`cost_failed_vnd` is spend on messages that never arrived; "
            "`cost_per_delivered_vnd` spreads all spend over the delivered ones.",
        ),
        (
            "code",
            'pretty(by_type.select("sms_type", "cost_vnd", "cost_failed_vnd", '
            '"cost_per_delivered_vnd"))',
        ),
        (
            "code",
            'by_campaign = esms.cost_breakdown(lake, by="campaign", start=start, end=today)\n'
            "plots.plot_cost_breakdown(by_campaign, subtitle=period)",
        ),
        ("code", 'pretty(esms.cost_breakdown(lake, by=["month", "carrier"]).head(10))'),
        (
            "md",
            "## Segments and Unicode\n\nVietnamese with diacritics is sent as UCS-2: 70 "
            "characters for one segment instead of 160, so the same words can cost two or "
            "three times as much.",
        ),
        (
            "code",
            'pretty(lake.filter(pl.col("sms_type").is_in([1, 2])).group_by("encoding", '
            '"segments").agg(\n'
            "    messages=pl.len(),\n"
            '    mean_length=pl.col("length").mean().round(0).cast(pl.Int64),\n'
            '    mean_price_vnd=pl.col("sell_price").mean(),\n'
            ').sort("encoding", "segments").collect())',
        ),
        ("code", CLOSE_LAKE),
    ],
    "04_lake_in_other_engines": [
        (
            "md",
            "# The lake in other engines\n\n"
            "The lake is plain Hive-partitioned Parquet written by our own code: "
            "`sms/sms_type=<code>/date=<YYYY-MM-DD>/part-0.parquet`. DuckDB, pyarrow, Spark, "
            "Trino and Athena read it as it is.",
        ),
        (
            "code",
            SETUP + "\nimport duckdb\nimport pyarrow.dataset as ds\nimport pyarrow.parquet as pq",
        ),
        ("code", OPEN_LAKE),
        ("code", 'sorted(str(p.relative_to(lake_path)) for p in lake_path.rglob("*.parquet"))[:5]'),
        ("md", "## DuckDB SQL"),
        (
            "code",
            'pretty(duckdb.sql(f"""\n'
            "    SELECT sms_type, carrier,\n"
            "           count(*) AS messages,\n"
            "           count(*) FILTER (WHERE send_result = 1)\n"
            "             / count(*) FILTER (WHERE send_result IN (0, 1))"
            " AS delivery_rate,\n"
            "           sum(sell_price) AS cost_vnd\n"
            "    FROM read_parquet('{lake_path}/sms/*/*/part-0.parquet', hive_partitioning = true)\n"
            "    WHERE date >= DATE '{start}'\n"
            "    GROUP BY ALL ORDER BY sms_type, messages DESC\n"
            '""").pl().head(10))',
        ),
        (
            "md",
            "## The same report on Polars, DuckDB and Spark\n\n"
            "Every report is written once (with Narwhals) and runs where the data is: "
            "given a Polars frame it returns a Polars DataFrame, given a DuckDB relation "
            "a DuckDB relation (DuckDB computes it), given a Spark DataFrame a Spark "
            "DataFrame (Spark computes it). Three lines each:",
        ),
        (
            "code",
            'polars_report = esms.delivery(lake, by=["carrier", "date"])  # a Polars DataFrame\n'
            "pretty(polars_report.head(5))",
        ),
        (
            "code",
            "lake_sms = duckdb.sql(f\"SELECT * FROM read_parquet('{lake_path}/sms/**/*.parquet', "
            'hive_partitioning = true)")\n'
            'duckdb_report = esms.delivery(lake_sms, by=["carrier", "date"])  # a DuckDB relation\n'
            'instants = ["first_sent", "last_sent"]  # each engine shows them in its own time zone\n'
            "duckdb_report.pl().drop(instants).equals(polars_report.drop(instants))  # same rows, order",
        ),
        (
            "md",
            "And on Spark. `getOrCreate()` connects to the Spark Connect server named in "
            "`SPARK_REMOTE` when it is set (`sc://host:15002`, a cluster or Databricks), "
            "and otherwise starts Spark on this machine; either way Spark computes the "
            "report and `show` brings back five rows.",
        ),
        (
            "code",
            SPARK_SESSION + "\n"
            'spark_report = esms.delivery(spark.read.parquet(str(lake_path.resolve() / "sms")), '
            'by=["carrier", "date"])\n'
            'spark_report.select("carrier", "date", "messages", "delivered").show(5)  # a Spark DataFrame',
        ),
        (
            "code",
            "# The same rows in the same order as Polars gave (instants aside, as above).\n"
            "pl.from_arrow(spark_report.toArrow()).drop(instants).equals(polars_report.drop(instants))",
        ),
        (
            "md",
            "## pyarrow\n\nThe partition keys come from the path; inside the files, "
            "`sent_at` is a microsecond timestamp adjusted to UTC, with the Vietnam zone in "
            "the Arrow schema, and the schema version in the metadata.",
        ),
        (
            "code",
            'dataset = ds.dataset(lake_path / "sms", format="parquet", '
            'partitioning="hive")\n'
            'print(dataset.count_rows(), "rows;", lake.select(pl.len()).collect().item(), '
            '"through read_lake")\n'
            'first = next(lake_path.rglob("part-0.parquet"))\n'
            "schema = pq.read_schema(first)\n"
            'print(schema.field("sent_at"))\n'
            'print(schema.metadata[b"esms_analytics.schema_version"])',
        ),
        (
            "md",
            "## Freshness\n\n`lake_info` reads the manifest: what was fetched when, and which "
            "days are not settled yet (they will be fetched again by the next sync).",
        ),
        ("code", "print(esms.lake_info(lake_path).summary())"),
        (
            "md",
            "## Spark, Trino, Athena\n\n"
            "```python\n"
            'df = spark.read.parquet("s3a://bucket/esms/sms")  # sms_type, date discovered\n'
            'df.where("date >= \'2026-11-01\' AND sms_type = 2").groupBy("carrier").count()\n'
            "```\n\n"
            "```sql\n"
            "-- Trino (Hive connector) / Athena\n"
            "CREATE TABLE esms.sms (sms_id BIGINT, reference_id VARCHAR, campaign VARCHAR,\n"
            "  content VARCHAR, phone VARCHAR, phone_e164 VARCHAR, carrier VARCHAR,\n"
            "  sell_price DOUBLE, sms_type_label VARCHAR, send_status TINYINT,\n"
            "  send_status_label VARCHAR, send_result TINYINT, send_result_label VARCHAR,\n"
            "  is_final BOOLEAN, sent_at TIMESTAMP(6) WITH TIME ZONE, encoding VARCHAR,\n"
            "  segments SMALLINT, length INTEGER, sms_type INTEGER, date DATE)\n"
            "WITH (external_location = 's3://bucket/esms/sms', format = 'PARQUET',\n"
            "      partitioned_by = ARRAY['sms_type', 'date']);\n"
            "CALL system.sync_partition_metadata('esms', 'sms', 'ADD');\n"
            "```\n\n"
            "Spark on `s3a://` needs the hadoop-aws jars (see the README's `spark.hadoop.fs.s3a.*` "
            "settings) and Trino and Athena are not installed here, so these two cells are "
            "text; the DuckDB, Spark and pyarrow cells above run on every test run.",
        ),
        ("code", CLOSE_LAKE),
    ],
    "05_monday_morning": [
        (
            "md",
            "# Monday morning\n\n"
            "The three questions an SMS marketing manager asks first thing on Monday, "
            "one call each: what did last week cost, which campaigns and carriers failed, "
            "and is anything still pending?",
        ),
        ("code", SETUP),
        ("code", OPEN_LAKE),
        (
            "code",
            "last_monday = today - timedelta(days=today.weekday() + 7)\n"
            'last_week = {"start": last_monday, "end": last_monday + timedelta(days=6)}\n'
            'print("last week:", last_week["start"], "–", last_week["end"])',
        ),
        ("md", "## What did last week cost?"),
        ("code", 'pretty(esms.cost_breakdown(lake, by="sms_type", totals=True, **last_week))'),
        (
            "md",
            "## Which campaigns and carriers failed?\n\n"
            "Campaign × carrier pairs with at least 100 messages, the worst first; "
            "`campaign_delivery_rate` says whether the campaign or the carrier is the problem.",
        ),
        ("code", "pretty(esms.failure_hotspots(lake, top=10, **last_week))"),
        (
            "md",
            "## Is anything still pending?\n\n"
            "Campaigns with messages that have no final carrier report yet; their rates can "
            "still move. (`esms.lake_info(lake_path)` says which days the next sync fetches "
            "again.)",
        ),
        (
            "code",
            "pretty(esms.delivery_by_campaign(lake, start=last_monday, end=today)"
            '.filter(pl.col("pending") > 0).select("campaign", "messages", "pending", '
            '"pending_share", "last_sent"))',
        ),
        ("code", CLOSE_LAKE),
    ],
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` from its cells, without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": KERNEL,
        "display_name": "esms-analytics (.venv)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python"}
    for kind, source in CELLS[name]:
        cell = (
            nbformat.v4.new_markdown_cell(source)
            if kind == "md"
            else nbformat.v4.new_code_cell(source)
        )
        notebook.cells.append(cell)
    return notebook


def clean(notebook: nbformat.NotebookNode) -> None:
    """Drop what only a live session means: widget state, timings, stderr noise."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream" and output.name == "stderr":
                continue
            data = output.get("data", {})
            for kind in WIDGET_TYPES:
                data.pop(kind, None)
            if output.output_type in ("display_data", "execute_result") and not data:
                continue
            kept.append(output)
        cell.outputs = kept


def main(names: list[str]) -> None:
    for name in names or list(CELLS):
        notebook = build(name)
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name=KERNEL,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        ).execute()
        clean(notebook)
        for index, cell in enumerate(notebook.cells):
            cell["id"] = f"{name[:2]}-{index:02d}"
        nbformat.write(notebook, NOTEBOOKS / f"{name}.ipynb")
        print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
    main(sys.argv[1:])
