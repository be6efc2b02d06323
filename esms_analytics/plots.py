"""Plots of the reports: one function per report, each returning a matplotlib Figure.

The only module that imports matplotlib. Figures are built with the
object-oriented API (no pyplot state), so they render headless and in
notebooks alike. Carriers keep one colour across every plot; rates are shown
as percentages with their 95% intervals, costs in VND.
"""

from __future__ import annotations

import io
import itertools
from typing import Any, Final

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

CARRIER_COLORS: Final[dict[str, str]] = {
    "viettel": "#d62728",
    "vinaphone": "#1f77b4",
    "mobifone": "#2ca02c",
    "vietnamobile": "#ff7f0e",
    "gmobile": "#9467bd",
    "itel": "#8c564b",
    "reddi": "#e377c2",
    "unknown": "#7f7f7f",
}
DELIVERED_COLOR: Final = "#2a9d8f"
FAILED_COLOR: Final = "#e76f51"
PENDING_COLOR: Final = "#e9c46a"
# DejaVu Sans ships with matplotlib and covers Vietnamese diacritics.
FONT: Final = {"family": "DejaVu Sans"}


def _interval(rows: pl.DataFrame) -> list[Any]:
    # Rounding can leave a bound a hair on the wrong side of its rate; matplotlib refuses that.
    rate = rows["delivery_rate"].to_numpy()
    return [
        np.maximum(rate - rows["delivery_rate_low"].to_numpy(), 0.0),
        np.maximum(rows["delivery_rate_high"].to_numpy() - rate, 0.0),
    ]


def _vnd(value: float, _position: object = None) -> str:
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.1f}B ₫"
    if magnitude >= 1e6:
        return f"{value / 1e6:.1f}M ₫"
    if magnitude >= 1e3:
        return f"{value / 1e3:.0f}k ₫"
    return f"{value:.0f} ₫"


def _figure(height_items: int, *, width: float = 9.0) -> Figure:
    figure = Figure(figsize=(width, max(3.0, 0.42 * height_items + 1.6)), layout="constrained")
    return figure


def _empty(figure: Figure, title: str) -> Figure:
    axes = figure.add_subplot()
    axes.set_title(title, fontdict=FONT)
    axes.text(
        0.5,
        0.5,
        "no data for this selection",
        ha="center",
        va="center",
        transform=axes.transAxes,
        color="#555555",
    )
    axes.set_axis_off()
    return figure


def plot_delivery_by_campaign(report: pl.DataFrame, *, top: int = 15) -> Figure:
    """Delivery rate per campaign with its 95% interval; provisional campaigns hatched."""
    rows = report.filter(pl.col("delivery_rate").is_not_null()).head(top).reverse()
    figure = _figure(rows.height)
    title = "Delivery rate by campaign (95% Wilson interval)"
    if rows.height == 0:
        return _empty(figure, title)
    axes = figure.add_subplot()
    rate = rows["delivery_rate"].to_numpy()
    errors = _interval(rows)
    positions = range(rows.height)
    bars = axes.barh(
        positions, rate, xerr=errors, color=DELIVERED_COLOR, ecolor="#333333", capsize=3
    )
    for bar, provisional in zip(bars, rows["provisional"], strict=True):
        if provisional:
            bar.set_hatch("//")
            bar.set_alpha(0.6)
    labels = [
        f"{name}  ({messages:,})"
        for name, messages in rows.select("campaign", "messages").iter_rows()
    ]
    axes.set_yticks(list(positions), labels, fontdict=FONT)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlim(0, 1.0)
    axes.set_xlabel("delivered / (delivered + failed), %;  (messages) after each name")
    axes.set_title(
        title + ("; hatched = provisional" if rows["provisional"].any() else ""), fontdict=FONT
    )
    return figure


def plot_cost_breakdown(report: pl.DataFrame, *, top: int = 15) -> Figure:
    """Spend per group, split into delivered, failed and not-yet-final messages, in VND."""
    measures = {
        "messages",
        "delivered",
        "segments",
        "cost_vnd",
        "cost_delivered_vnd",
        "cost_failed_vnd",
        "cost_per_delivered_vnd",
        "share",
    }
    dimensions = [name for name in report.columns if name not in measures]
    rows = report.filter(pl.col(dimensions[0]).cast(pl.String) != "(total)").head(top).reverse()
    figure = _figure(rows.height)
    title = f"Cost by {' × '.join(dimensions)} (VND)"
    if rows.height == 0:
        return _empty(figure, title)
    axes = figure.add_subplot()
    labels = [
        " · ".join("—" if value is None else str(value) for value in row)
        for row in rows.select(dimensions).iter_rows()
    ]
    delivered = rows["cost_delivered_vnd"].to_numpy()
    failed = rows["cost_failed_vnd"].to_numpy()
    pending = rows["cost_vnd"].to_numpy() - delivered - failed
    positions = list(range(rows.height))
    axes.barh(positions, delivered, color=DELIVERED_COLOR, label="delivered")
    axes.barh(positions, failed, left=delivered, color=FAILED_COLOR, label="failed")
    axes.barh(
        positions, pending, left=delivered + failed, color=PENDING_COLOR, label="not final yet"
    )
    axes.set_yticks(positions, labels, fontdict=FONT)
    axes.xaxis.set_major_formatter(FuncFormatter(_vnd))
    axes.set_xlabel("cost, VND")
    axes.legend(loc="lower right", frameon=False)
    axes.set_title(title, fontdict=FONT)
    return figure


def plot_delivery_trend(report: pl.DataFrame) -> Figure:
    """Volume (bars) and delivery rate (line, %) per period; one line per group if grouped."""
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    title = "Delivery trend"
    if report.height == 0:
        return _empty(figure, title)
    axes = figure.add_subplot()
    groups = [
        name
        for name in report.columns
        if name
        not in ("period", "messages", "delivered", "failed", "pending", "delivery_rate", "cost_vnd")
    ]
    volume = report.group_by("period").agg(pl.col("messages").sum()).sort("period")
    periods = volume["period"].to_list()
    gaps = [(later - earlier).days for earlier, later in itertools.pairwise(periods)]
    axes.bar(
        periods,
        volume["messages"].to_list(),
        width=0.8 * min(gaps, default=1),
        color="#cfd8dc",
        label="messages",
    )
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_ylabel("messages")
    rate_axes = axes.twinx()
    if groups:
        for (name,), group in report.sort("period").group_by(groups[0], maintain_order=True):
            rate_axes.plot(
                group["period"].to_list(),
                group["delivery_rate"].to_list(),
                marker=".",
                label=str(name),
                color=CARRIER_COLORS.get(str(name)),
            )
        rate_axes.legend(loc="lower left", fontsize=8, ncols=4, frameon=False)
    else:
        rate_axes.plot(
            report["period"].to_list(),
            report["delivery_rate"].to_list(),
            color=DELIVERED_COLOR,
            marker=".",
            label="delivery rate",
        )
    rate_axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    rate_axes.set_ylabel("delivery rate, %")
    rate_axes.set_ylim(0, 1.02)
    axes.set_title(title + (f" by {groups[0]}" if groups else ""), fontdict=FONT)
    figure.autofmt_xdate()
    return figure


def plot_carrier_performance(report: pl.DataFrame) -> Figure:
    """Delivery rate per carrier (with 95% interval) for each message type."""
    types = report["sms_type"].unique(maintain_order=True).to_list()
    figure = Figure(figsize=(10, 2.6 * max(1, len(types)) + 0.8), layout="constrained")
    title = "Delivery rate by carrier (estimated from the number's original prefix)"
    if report.height == 0:
        return _empty(figure, title)
    axes_list = figure.subplots(len(types), 1, squeeze=False)[:, 0]
    for axes, sms_type in zip(axes_list, types, strict=True):
        rows = report.filter(
            (pl.col("sms_type") == sms_type) & pl.col("delivery_rate").is_not_null()
        )
        carriers = rows["carrier"].to_list()
        rate = rows["delivery_rate"].to_numpy()
        errors = _interval(rows)
        axes.bar(
            carriers,
            rate,
            yerr=errors,
            capsize=3,
            color=[CARRIER_COLORS.get(name, "#7f7f7f") for name in carriers],
        )
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_ylim(0, 1.05)
        axes.set_ylabel(f"{sms_type}\ndelivery, %", fontdict=FONT)
    figure.suptitle(title, fontproperties=FONT)
    return figure


def plot_failure_hotspots(report: pl.DataFrame) -> Figure:
    """Plot the worst campaign x carrier pairs, coloured by carrier, against the campaign's rate."""
    rows = report.reverse()
    figure = _figure(rows.height)
    title = "Failure hotspots: worst campaign × carrier delivery rates"
    if rows.height == 0:
        return _empty(figure, title)
    axes = figure.add_subplot()
    positions = list(range(rows.height))
    rate = rows["delivery_rate"].to_numpy()
    axes.barh(
        positions,
        rate,
        xerr=_interval(rows),
        color=[CARRIER_COLORS.get(name, "#7f7f7f") for name in rows["carrier"]],
        capsize=3,
    )
    axes.scatter(
        rows["campaign_delivery_rate"].to_numpy(),
        positions,
        marker="|",
        s=200,
        color="black",
        label="campaign, all carriers",
        zorder=3,
    )
    labels = [
        f"{campaign} · {carrier}"
        for campaign, carrier in rows.select("campaign", "carrier").iter_rows()
    ]
    axes.set_yticks(positions, labels, fontdict=FONT)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlim(0, 1.0)
    axes.set_xlabel("delivery rate, %")
    axes.legend(loc="lower right", frameon=False)
    axes.set_title(title, fontdict=FONT)
    return figure


def figure_png(figure: Figure, *, dpi: int = 110) -> bytes:
    """Render the figure as PNG bytes (for files, HTML reports and notebooks)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
