"""``make demo``: the whole job on the embedded simulator, start to finish.

Starts the simulator (its clock is the real clock), syncs the last ``days``
days of every message type into the lake with a progress bar, prints the
delivery and cost tables, writes the plots and one HTML page, and says where
everything is. Running it again is incremental: settled days are skipped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from esms_analytics.bundle import Bundle, Selection, write_bundle
from esms_analytics.errors import ConfigError, LakeError
from esms_analytics.lake import SOURCE_SIMULATOR, open_lake, read_lake
from esms_analytics.manifest import Manifest
from esms_analytics.render import format_table
from esms_analytics.simulator import Simulator
from esms_analytics.sync import SyncReport, sync

if TYPE_CHECKING:
    from esms_analytics.store import LakeLocation


@dataclass(frozen=True)
class DemoResult:
    """What the demo did: the sync's report and the reports it wrote."""

    sync: SyncReport
    #: None when the sync was stopped: no reports are written then.
    bundle: Bundle | None


def run_demo(
    *,
    lake: LakeLocation,
    reports_dir: Path,
    days: int = 90,
    daily_volume: int = 2500,
    progress: bool = True,
    storage_options: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> DemoResult:
    """Run the demo, printing as it goes; the caller decides what the outcome means.

    Setting ``stop`` stops the sync (see :func:`~esms_analytics.sync.sync`); the
    demo then returns without writing reports.
    """
    _check_demo_lake(lake, storage_options)
    began = time.monotonic()
    with (
        Simulator(days=days, daily_volume=daily_volume) as simulator,
        simulator.client(rate_limit=None, stop=stop) as client,
    ):
        today = simulator.today
        start = today - timedelta(days=days - 1)
        print(f"eSMS simulator at {simulator.base_url} (seeded history, real clock)")
        print(f"syncing {start} .. {today}, every message type, into {lake}/")
        report = sync(
            lake,
            start,
            today,
            client=client,
            workers=4,
            progress=progress,
            now=simulator.clock.now(),
            storage_options=storage_options,
        )
    print(report.summary())
    if report.stopped:
        return DemoResult(report, None)
    # The page covers the last days against as many days before them, so the demo shows
    # the comparison a real report makes; two days at least, since today may have no
    # message yet (just after midnight in Vietnam).
    page_days = min(days, max(2, min(30, days // 2)))
    selection = Selection(start=today - timedelta(days=page_days - 1), end=today)
    bundle = write_bundle(
        read_lake(lake, storage_options=storage_options),
        reports_dir,
        selection,
        source=str(getattr(lake, "location", lake)),  # a LakeStore names itself safely
        title="eSMS demo: delivery and cost report",
    )
    rows = bundle.tables["delivery"]["messages"].sum()
    print(
        f"\nDelivery by campaign, {selection.period_text()} "
        f"({rows:,} messages; rates exclude pending messages)"
    )
    print(format_table(bundle.tables["delivery"], rows=12))
    print("\nCost by campaign (VND)")
    print(format_table(bundle.tables["cost"], rows=12))
    _print_next_steps(lake, bundle, reports_dir, time.monotonic() - began)
    return DemoResult(report, bundle)


def _print_next_steps(
    lake: LakeLocation, bundle: Bundle, reports_dir: Path, elapsed: float
) -> None:
    print(
        f"\nDone in {elapsed:.0f}s. Everything is on disk:\n"
        f"  lake (Parquet, Hive-style) {lake}/sms/sms_type=*/date=*/part-0.parquet\n"
        f"  HTML report                {bundle.html}\n"
        f"  plots                      {reports_dir}/*.png\n"
        "What to try next:\n"
        "  make notebook                                  the notebooks in notebooks/\n"
        f"  .venv/bin/esms-analytics report cost --lake {lake} --by carrier\n"
        f"  .venv/bin/esms-analytics lake info --lake {lake}\n"
        f"  .venv/bin/esms-analytics report html --lake {lake} --format xlsx "
        f"--output {reports_dir}/report.xlsx\n"
        "  duckdb: SELECT * FROM read_parquet('data/lake/sms/*/*/part-0.parquet', "
        "hive_partitioning = true)\n"
        "  real account: export ESMS_API_KEY=... ESMS_SECRET_KEY=... then\n"
        "    .venv/bin/esms-analytics sync --lake data/lake --from YYYY-MM-DD --to YYYY-MM-DD",
        file=sys.stdout,
    )


def _check_demo_lake(lake: LakeLocation, storage_options: Mapping[str, str] | None) -> None:
    """Refuse a lake the simulator did not make: simulated rows must not join real ones."""
    try:
        store = open_lake(lake, create=False, storage_options=storage_options)
    except LakeError:
        return  # no lake there yet; anything else wrong with it, the sync names
    if Manifest(store).source == SOURCE_SIMULATOR:
        return
    raise ConfigError(
        f"--lake {store.location} holds data the simulator did not make; the demo writes "
        "simulated rows, so give it a folder of its own (or a new one)"
    )
