"""Peak memory of a sync of one large day: a window streams (issue 16, point 1).

One generated day of SmsType 2 is synced by one worker, the simulator in its
own process and the sync in a fresh interpreter each time; its peak RSS is
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. The baseline is the same
interpreter's peak once the imports are done, before the sync starts. Two
sizes give the cost of one more 100,000 rows (the slope), which is what a
window that streams must keep small: the row hashes (8 bytes a row) and the
spill's run bookkeeping, not the rows.
"""

from __future__ import annotations

from typing import Any, Final

from benchmarks.bench_sync import simulator_process
from benchmarks.common import in_subprocess

#: Targets from issue 16: the 1M-row day under 450 MiB, about 17 MiB per 100k rows more.
PEAK_TARGET_MIB: Final = 450
SLOPE_TARGET_MIB: Final = 17

SYNC = """
import json, resource, sys, tempfile
from datetime import datetime, timedelta
from pathlib import Path
from esms_analytics.client import EsmsClient
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync
def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
base_url = sys.argv[1]
now = datetime(2026, 11, 20, 12, 0, tzinfo=VIETNAM)
baseline = peak_mib()
received = [0, 0]
with tempfile.TemporaryDirectory() as scratch, EsmsClient(
        "sim-api-key", "sim-secret-key", base_url=base_url, rate_limit=None, timeout=120) as client:
    original = client._read_body
    def counting_read(*args, **kwargs):
        body = original(*args, **kwargs)
        if isinstance(body, bytes):
            received[0] += len(body)
            received[1] = max(received[1], len(body))
        return body
    client._read_body = counting_read
    report = sync(Path(scratch) / "lake", now.date() - timedelta(days=1),
                  now.date() - timedelta(days=1), sms_types=[2], client=client,
                  workers=1, progress=False, now=now, probes=False)
    assert report.complete, report.summary()
print(json.dumps({"rows": report.rows, "json_bytes": received[0], "largest_page": received[1],
                  "baseline_mib": baseline, "peak_mib": peak_mib()}))
"""


def run_memory(sizes: tuple[int, int] = (100_000, 1_000_000)) -> dict[str, Any]:
    """Sync one day of each size in a fresh process; peaks, baseline and slope in MiB."""
    runs = []
    for rows in sizes:
        with simulator_process(rows, 0.0) as base_url:
            runs.append(in_subprocess(SYNC, base_url))
    small, large = runs[0], runs[-1]
    slope = (large["peak_mib"] - small["peak_mib"]) / ((large["rows"] - small["rows"]) / 100_000)
    return {
        "runs": runs,
        "slope_mib_per_100k": slope,
        "peak_met": large["peak_mib"] < PEAK_TARGET_MIB * large["rows"] / 1_000_000,
        "slope_met": slope <= SLOPE_TARGET_MIB,
    }


def memory_section(memory: dict[str, Any]) -> list[str]:
    """The section of BENCHMARKS.md: one row per size, then the targets."""
    lines = [
        "### Peak memory syncing one large day",
        "",
        "One generated day of SmsType 2, one worker, the simulator in its own process and "
        "the sync in a fresh interpreter each time (`benchmarks/bench_memory.py`); peak RSS "
        "is the child's `ru_maxrss`, the baseline its peak once the imports are done. A "
        "window streams: pages are decoded in batches, rows seen again are found from 8-byte "
        "row hashes, each batch is sorted and spilled to a hidden file, and at commit the "
        "spill is copied, batches in the order they came, into the partition's hidden "
        "temporary file (renamed, or one upload, when complete), one row group at a time.",
        "",
        "| rows | day's JSON MB | baseline MiB | peak MiB |",
        "|---:|---:|---:|---:|",
    ]
    for run in memory["runs"]:
        lines.append(
            f"| {run['rows']:,} | {run['json_bytes'] / 1e6:.0f} | {run['baseline_mib']:.0f} | "
            f"{run['peak_mib']:.0f} |"
        )
    large = memory["runs"][-1]
    lines += [
        "",
        f"- Target: the {large['rows']:,}-row day under {PEAK_TARGET_MIB} MiB (scaled to the "
        f"size measured): {large['peak_mib']:.0f} MiB, {_verdict(memory['peak_met'])}.",
        f"- Target: at most {SLOPE_TARGET_MIB} MiB more per 100,000 rows: "
        f"{memory['slope_mib_per_100k']:.1f} MiB, {_verdict(memory['slope_met'])}.",
        "",
    ]
    return lines


def _verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"
