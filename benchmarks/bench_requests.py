"""Requests of a first sync with wide probes, counted at the simulator (issue 23).

An account of 2 busy types (rows most days, one page a day) and 5 unused types.
Day by day, every (type, day) is one request (each day fits one page), so its
count is days x 7; the busy types alone are synced to count their requests.
"""

from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from esms_analytics.simulator import Simulator
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync

BUSY = (2, 25)
TYPES = (1, 2, 8, 23, 24, 25, 26)
RATE = 10.0  # the client's default rate limit, requests a second


def _counts(sms_type: int, day: date) -> int:
    if sms_type not in BUSY:
        return 0
    return 0 if day.toordinal() % 11 == 0 else 5 + day.day % 7  # rows on 10 days of 11


def run(days: int) -> dict[str, Any]:
    now = datetime(2026, 6, 30, 12, tzinfo=VIETNAM)
    first, last = now.date() - timedelta(days=days - 1), now.date()
    result: dict[str, Any] = {"days": days, "months": round(days / 30.44)}
    with (
        Simulator(now=now, days=days + 5, counts=_counts) as sim,
        sim.client() as client,
        tempfile.TemporaryDirectory() as scratch,
    ):
        runs = {
            "probed": dict(sms_types=TYPES, probes=True),
            "busy types alone": dict(sms_types=BUSY, probes=False),
        }
        for name, options in runs.items():
            sim.reset_requests()
            lake = Path(scratch) / name.replace(" ", "_")
            report = sync(lake, first, last, client=client, progress=False, now=now, **options)
            assert report.complete
            result[name] = len(sim.requests)
        result["day by day"] = days * len(TYPES)
        # A nightly sync of the last 10 days, a day later, on the probed lake and day by day.
        night = now + timedelta(days=1)
        sim.clock.set(night)
        for name, probes in (("nightly probed", True), ("nightly day by day", False)):
            lake = Path(scratch) / f"night_{probes}"
            sync(lake, first, last, client=client, progress=False, now=now, probes=probes)
            sim.reset_requests()
            begin = night.date() - timedelta(days=9)
            sync(lake, begin, night.date(), client=client, progress=False, now=night, probes=probes)
            result[name] = len(sim.requests)
            sim.clock.set(night)
    return result


def requests_section(data: dict[str, Any]) -> list[str]:
    probed, busy, daily = data["probed"], data["busy types alone"], data["day by day"]
    allowed = 1.1 * busy + 2 * 5 * data["months"]
    return [
        f"## 8. Requests of a first sync: {data['days']:,} days, 2 busy + 5 unused types",
        "",
        "Requests counted at the simulator; wall time at the default rate limit "
        f"({RATE:g} requests a second) computed from them. Day by day is one request a "
        "(type, day): every day fits one page.",
        "",
        "| sync | requests | s at 10/s |",
        "|---|---:|---:|",
        f"| day by day (`--no-probes`), 7 types | {daily:,} | {daily / RATE:,.0f} |",
        f"| the 2 busy types alone | {busy:,} | {busy / RATE:,.0f} |",
        f"| wide probes, 7 types | {probed:,} | {probed / RATE:,.0f} |",
        f"| nightly 10 days, day by day | {data['nightly day by day']:,} | |",
        f"| nightly 10 days, probed | {data['nightly probed']:,} | |",
        "",
        f"- Target: at most 1.1x the busy types alone + 2 per unused type and month "
        f"({allowed:,.0f}): {probed:,}, {'**met**' if probed <= allowed else '**missed**'}; "
        f"{daily / probed:.1f}x fewer requests (and seconds) than day by day.",
        f"- Target: a nightly sync asks no more than day by day: "
        f"{data['nightly probed']} against {data['nightly day by day']}, "
        f"{'**met**' if data['nightly probed'] <= data['nightly day by day'] else '**missed**'}.",
        "",
    ]


if __name__ == "__main__":
    import sys

    print("\n".join(requests_section(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1095))))
