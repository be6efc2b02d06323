"""The standard set of reports, written as PNG plots and one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from esms_analytics import plots, render, reports
from esms_analytics.codes import VN_TZ


@dataclass(frozen=True)
class ReportKind:
    """One report: how to compute it, how to plot it, and how to read it."""

    name: str
    title: str
    note: str
    compute: Callable[..., pl.DataFrame]
    plot: Callable[[pl.DataFrame], Any]


KINDS: dict[str, ReportKind] = {
    kind.name: kind
    for kind in (
        ReportKind(
            "delivery",
            "Delivery by campaign",
            "delivery_rate = delivered / (delivered + failed); pending messages are left out. "
            "Provisional campaigns still have messages waiting for a carrier report (up to ~3 "
            "days), so their numbers can still move.",
            reports.delivery_by_campaign,
            plots.plot_delivery_by_campaign,
        ),
        ReportKind(
            "cost",
            "Cost by campaign",
            "Spend in VND as eSMS reports it (sell_price), split into delivered, failed and "
            "not-yet-final messages; cost per delivered message counts all spend.",
            reports.cost_breakdown,
            plots.plot_cost_breakdown,
        ),
        ReportKind(
            "trend",
            "Weekly delivery trend",
            "Volume and delivery rate per ISO week of creation (Vietnam time).",
            reports.delivery_trend,
            plots.plot_delivery_trend,
        ),
        ReportKind(
            "carriers",
            "Carrier performance",
            "Carrier is estimated from the number's prefix: the carrier that first issued it "
            "(ported numbers count under their old carrier).",
            reports.carrier_performance,
            plots.plot_carrier_performance,
        ),
        ReportKind(
            "hotspots",
            "Failure hotspots",
            "Campaign x carrier pairs with at least 100 messages and the worst delivery rates; "
            "the black mark is the campaign's rate over all carriers.",
            reports.failure_hotspots,
            plots.plot_failure_hotspots,
        ),
    )
}

#: Arguments each kind gets in the standard bundle.
BUNDLE_OPTIONS: dict[str, dict[str, Any]] = {
    "cost": {"by": "campaign", "totals": True},
    "trend": {"every": "1w"},
}


@dataclass
class Bundle:
    """What :func:`write_bundle` produced."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    pngs: dict[str, Path] = field(default_factory=dict)
    html: Path | None = None


def write_bundle(frame: pl.LazyFrame | pl.DataFrame, out_dir: Path, *, title: str) -> Bundle:
    """Compute every report over ``frame``, write its PNG and one HTML page to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = Bundle()
    sections = []
    for name, kind in KINDS.items():
        table = kind.compute(frame, **BUNDLE_OPTIONS.get(name, {}))
        png = plots.figure_png(kind.plot(table))
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        bundle.tables[name], bundle.pngs[name] = table, path
        sections.append(render.Section(kind.title, kind.note, table, png))
    page = render.html_page(
        title,
        f"Generated {datetime.now(VN_TZ):%Y-%m-%d %H:%M} (Vietnam time) by esms-analytics.",
        sections,
    )
    bundle.html = out_dir / "report.html"
    bundle.html.write_text(page, "utf-8")
    return bundle
