"""Plots of the reports: one function per report, each taking the report's frame.

The only module that imports matplotlib. Figures are built with the
object-oriented API (no pyplot state), so they render headless and in
notebooks alike. Every plot follows the same rules, so none misleads:

- a bold title, then a subtitle with the period and filters (``subtitle=``)
  and notes on what is left out or marked;
- rates as dots with their 95% Wilson interval, sorted by rate, against the
  overall rate as a dashed line, on an axis fitted to the data (not 0-100 %);
- when not every group fits, the worst ones are always shown and the
  subtitle says "N of M campaigns (all in the table)";
- groups with too few messages for a rate to mean much are greyed or left
  out, and the subtitle says so; provisional groups are hollow dots;
- partial first and last periods of a trend are faded and named;
- legends sit outside the axes, never over data.

:func:`save_figure` writes PNG, SVG or PDF by the file's extension.
"""

from __future__ import annotations

import io
import itertools
import textwrap
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from esms_analytics.errors import ConfigError
from esms_analytics.files import open_file
from esms_analytics.registry import REPORTS, report_spec
from esms_analytics.reports import add_wilson_interval

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
RATE_COLOR: Final = "#264653"
BELOW_COLOR: Final = "#c0392b"
SMALL_COLOR: Final = "#c4c4c4"
REFERENCE_COLOR: Final = "#777777"
# DejaVu Sans ships with matplotlib and covers Vietnamese diacritics.
FONT_FAMILY: Final = "DejaVu Sans"
#: What --plot writes, by the file's extension.
PLOT_FORMATS: Final = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Fewer final messages than this, and a group's rate is too uncertain to rank.
MIN_MESSAGES: Final = 30
_LABEL_CHARS: Final = 34


# -- shared pieces ----------------------------------------------------------------------


def _figure(rows: int, *, width: float = 10.0, per_row: float = 0.3, extra: float = 2.2) -> Figure:
    return Figure(figsize=(width, max(3.2, per_row * rows + extra)), layout="constrained")


def _heading(figure: Figure, axes: Axes, title: str, subtitle: str, notes: Sequence[str]) -> None:
    """Put the title above everything and the subtitle with its notes above the axes."""
    figure.suptitle(title, fontweight="bold", fontsize=12, fontfamily=FONT_FAMILY)
    width = int(figure.get_figwidth() * 13)
    lines = [textwrap.fill(line, width) for line in (subtitle, *notes) if line]
    axes.set_title(
        "\n".join(lines), loc="left", fontsize=8.5, color="#444444", fontfamily=FONT_FAMILY
    )


def _panels(
    figure: Figure, count: int, columns: int, title: str, lines: Sequence[str], **share: Any
) -> list[Axes]:
    """Lay out ``count`` panels under a header row holding the title and subtitle lines."""
    rows = -(-max(1, count) // columns)
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=[0.001, *([1.0] * rows)])
    header = figure.add_subplot(grid[0, :])
    header.set_axis_off()
    _heading(figure, header, title, lines[0] if lines else "", lines[1:])
    first = figure.add_subplot(grid[1, 0])
    panels = [first]
    for index in range(1, count):
        row, column = divmod(index, columns)
        panels.append(
            figure.add_subplot(
                grid[row + 1, column],
                sharex=first if share.get("sharex") else None,
                sharey=first if share.get("sharey") else None,
            )
        )
    return panels


def _empty(figure: Figure, title: str, subtitle: str) -> Figure:
    axes = figure.add_subplot()
    _heading(figure, axes, title, subtitle, [])
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


def _short(name: object) -> str:
    text = "—" if name is None else str(name)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _fitted(axes: Axes, values: Sequence[float | None], *, vertical: bool = False) -> None:
    """Fit the rate axis to the data, with a margin, inside 0-100 %."""
    finite = [float(value) for value in values if value is not None and np.isfinite(value)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    margin = max((high - low) * 0.08, 0.01)
    bounds = (max(0.0, low - margin), min(1.0, high + margin))
    formatter = PercentFormatter(1.0, decimals=0 if bounds[1] - bounds[0] > 0.06 else 1)
    # Whole steps of 1, 2 or 5 points: no "72.5 %" ticks rounded into twins.
    locator = MaxNLocator(nbins=8, steps=[1, 2, 5, 10])
    axis = axes.yaxis if vertical else axes.xaxis
    (axes.set_ylim if vertical else axes.set_xlim)(*bounds)
    axis.set_major_locator(locator)
    axis.set_major_formatter(formatter)


def _overall(report: pl.DataFrame) -> float | None:
    delivered, failed = int(report["delivered"].sum()), int(report["failed"].sum())
    return delivered / (delivered + failed) if delivered + failed else None


def _dots(axes: Axes, rows: pl.DataFrame, colors: Sequence[str], *, hollow: Sequence[bool]) -> None:
    """Draw each row's rate as a dot on its 95% interval, top to bottom in row order."""
    positions = np.arange(rows.height)[::-1]
    rate = rows["delivery_rate"].to_numpy()
    axes.hlines(
        positions,
        rows["delivery_rate_low"].to_numpy(),
        rows["delivery_rate_high"].to_numpy(),
        colors=colors,
        linewidth=2.2,
        alpha=0.55,
    )
    faces = ["white" if empty else color for empty, color in zip(hollow, colors, strict=True)]
    axes.scatter(rate, positions, s=46, c=faces, edgecolors=colors, linewidths=1.6, zorder=3)
    axes.set_ylim(-0.7, rows.height - 0.3)
    axes.grid(axis="x", color="#eeeeee")
    axes.set_axisbelow(True)


def _reference(axes: Axes, rate: float | None, label: str) -> Line2D | None:
    if rate is None:
        return None
    axes.axvline(rate, color=REFERENCE_COLOR, linestyle="--", linewidth=1.2, zorder=1)
    return Line2D([], [], color=REFERENCE_COLOR, linestyle="--", label=f"{label} {rate:.1%}")


def _marker(label: str, face: str, edge: str) -> Line2D:
    return Line2D(
        [], [], marker="o", linestyle="", markerfacecolor=face, markeredgecolor=edge, label=label
    )


def _legend_below(figure: Figure, handles: Sequence[Any]) -> None:
    """Put the legend under the plot, outside every axes, so it never covers data."""
    shown = [handle for handle in handles if handle is not None]
    if shown:
        figure.legend(
            handles=shown,
            loc="outside lower center",
            ncols=2 if len(shown) == 4 else min(len(shown), 3),
            frameon=False,
            fontsize=9,
        )


def _with_interval(rows: pl.DataFrame) -> pl.DataFrame:
    if "delivery_rate_low" in rows.columns:
        return rows
    return add_wilson_interval(rows)


def _pick(
    rows: pl.DataFrame, top: int, keys: Sequence[str] | None = None
) -> tuple[pl.DataFrame, str]:
    """Keep the worst half and the largest rest when not every row fits; say so."""
    if rows.height <= top:
        return rows, ""
    worst = rows.sort("delivery_rate").head(top - top // 2)
    largest = rows.join(
        worst, on=list(keys or rows.columns[:1]), how="anti", nulls_equal=True
    ).sort("messages", descending=True)
    chosen = pl.concat([worst, largest.head(top // 2)])
    note = f"the {worst.height} worst and the {top // 2} largest by messages"
    return chosen, note


# -- the report plots --------------------------------------------------------------------


def plot_delivery_by_campaign(
    report: pl.DataFrame, *, top: int = 20, min_messages: int = MIN_MESSAGES, subtitle: str = ""
) -> Figure:
    """Delivery rate per group as dots on their 95% intervals, worst at the top.

    Takes :func:`~esms_analytics.reports.delivery` by any dimensions (by
    campaign, as ``delivery_by_campaign`` gives it, unless told otherwise). The
    dashed line is the rate over every group shown in the table. Hollow dots
    are provisional groups; red ones lie entirely below the overall rate.
    """
    dimensions = REPORTS["delivery"].dimensions(report.columns)
    title = f"Delivery rate by {' × '.join(dimensions)}"
    rated = report.filter(pl.col("delivery_rate").is_not_null())
    small = rated.filter((pl.col("delivered") + pl.col("failed")) < min_messages)
    ranked = rated.filter((pl.col("delivered") + pl.col("failed")) >= min_messages)
    chosen, how = _pick(ranked, top, dimensions)
    rows = chosen.sort(["delivery_rate", "messages"], descending=[False, True])
    figure = _figure(rows.height)
    if rows.height == 0:
        return _empty(figure, title, subtitle)
    axes = figure.add_subplot()
    overall = _overall(report)
    below = [
        overall is not None and high < overall for high in rows["delivery_rate_high"].to_list()
    ]
    colors = [BELOW_COLOR if flag else RATE_COLOR for flag in below]
    _dots(axes, rows, colors, hollow=rows["provisional"].to_list())
    labels = [
        f"{_short(' · '.join('—' if v is None else str(v) for v in row[:-1]))}  ({row[-1]:,})"
        for row in rows.select(*dimensions, "messages").rows()
    ]
    axes.set_yticks(np.arange(rows.height)[::-1], labels, fontsize=8.5, fontfamily=FONT_FAMILY)
    _fitted(axes, [*rows["delivery_rate_low"], *rows["delivery_rate_high"], overall])
    axes.set_xlabel("delivered / (delivered + failed);  (messages) after each name")
    notes = _coverage_notes(report.height, rows.height, how, small.height, min_messages)
    provisional = sum(rows["provisional"])
    if provisional:
        notes.append(
            f"hollow: provisional, {provisional} of {rows.height} still have pending messages"
        )
    _heading(figure, axes, title, subtitle, notes)
    _legend_below(
        figure,
        [
            _reference(axes, overall, "all campaigns"),
            _marker("interval below the overall rate", BELOW_COLOR, BELOW_COLOR),
            _marker("final", RATE_COLOR, RATE_COLOR),
            _marker("provisional (messages still pending)", "white", RATE_COLOR),
        ],
    )
    return figure


def _coverage_notes(
    total: int, shown: int, how: str, small: int, min_messages: int, noun: str = "campaigns"
) -> list[str]:
    notes = []
    if shown < total:
        detail = f": {how}" if how else ""
        notes.append(f"{shown} of {total} {noun} (all in the table){detail}")
    if small:
        notes.append(
            f"{small} {noun} with fewer than {min_messages} final messages left out (in the table)"
        )
    return notes


def plot_cost_breakdown(report: pl.DataFrame, *, top: int = 15, subtitle: str = "") -> Figure:
    """Spend per group, split into delivered, failed and not-yet-final messages, in VND."""
    dimensions = REPORTS["cost"].dimensions(report.columns)
    groups = report.filter(pl.col(dimensions[0]).cast(pl.String) != "(total)")
    rows = groups.head(top)
    figure = _figure(rows.height)
    title = f"Cost by {' × '.join(dimensions)} (VND)"
    if rows.height == 0:
        return _empty(figure, title, subtitle)
    axes = figure.add_subplot()
    labels = [
        " · ".join(_short(value) for value in row) for row in rows.select(dimensions).iter_rows()
    ]
    delivered = rows["cost_delivered_vnd"].to_numpy()
    failed = rows["cost_failed_vnd"].to_numpy()
    pending = rows["cost_vnd"].to_numpy() - delivered - failed
    positions = np.arange(rows.height)[::-1]
    axes.barh(positions, delivered, color=DELIVERED_COLOR, label="delivered")
    axes.barh(positions, failed, left=delivered, color=FAILED_COLOR, label="failed")
    axes.barh(
        positions, pending, left=delivered + failed, color=PENDING_COLOR, label="not final yet"
    )
    axes.set_yticks(positions, labels, fontsize=8.5, fontfamily=FONT_FAMILY)
    axes.set_ylim(-0.7, rows.height - 0.3)
    axes.set_xlim(0, float(rows["cost_vnd"].max()) * 1.04)  # type: ignore[arg-type]
    axes.xaxis.set_major_formatter(FuncFormatter(_vnd))
    axes.set_xlabel("cost, VND")
    axes.grid(axis="x", color="#eeeeee")
    axes.set_axisbelow(True)
    total = float(groups["cost_vnd"].sum())
    notes = [
        f"total {total:,.0f} ₫; failed messages {float(groups['cost_failed_vnd'].sum()):,.0f} ₫"
    ]
    if rows.height < groups.height:
        notes.append(f"the {rows.height} most expensive of {groups.height} (all in the table)")
    _heading(figure, axes, title, subtitle, notes)
    _legend_below(figure, axes.get_legend_handles_labels()[0])
    return figure


def _vnd(value: float, _position: object = None) -> str:
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.1f}B ₫"
    if magnitude >= 1e6:
        return f"{value / 1e6:.1f}M ₫"
    if magnitude >= 1e3:
        return f"{value / 1e3:.0f}k ₫"
    return f"{value:.0f} ₫"


def _period_length(periods: Sequence[date]) -> tuple[int, str]:
    """Guess the period from the gaps: 1 day, 7 days (ISO week) or a month."""
    gaps = [(later - earlier).days for earlier, later in itertools.pairwise(periods)]
    smallest = min(gaps, default=1)
    if smallest >= 28:
        return 31, "month"
    return (7, "week") if smallest >= 7 else (1, "day")


def _period_end(start: date, name: str) -> date:
    if name == "month":
        following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
        return following - timedelta(days=1)
    return start + timedelta(days=7 if name == "week" else 1) - timedelta(days=1)


def _partial(periods: Sequence[date], covered: tuple[date, date] | None) -> tuple[list[bool], str]:
    """Mark the periods the covered days do not fill, and say which."""
    if covered is None or not periods:
        return [False] * len(periods), ""
    _, name = _period_length(periods)
    flags = [start < covered[0] or _period_end(start, name) > covered[1] for start in periods]
    named = [f"{start}" for start, flag in zip(periods, flags, strict=True) if flag]
    if not named:
        return flags, ""
    plural = f"{name}s" if len(named) > 1 else name
    return flags, f"faded: partial {plural} ({', '.join(named)}), not complete in the data"


def plot_delivery_trend(
    report: pl.DataFrame,
    *,
    subtitle: str = "",
    covered: tuple[date, date] | None = None,
    min_messages: int = MIN_MESSAGES,
) -> Figure:
    """Volume (bars) and delivery rate (dots, %) per period; small multiples when grouped.

    ``covered`` is the first and last complete day of the selection: periods it
    does not fill (a week cut by the selection, today) are faded and named.
    """
    groups = [name for name in REPORTS["trend"].dimensions(report.columns) if name != "period"]
    title = "Delivery trend" + (f" by {groups[0]}" if groups else "")
    if report.height == 0:
        return _empty(Figure(figsize=(10, 4.5), layout="constrained"), title, subtitle)
    if groups:
        return _trend_panels(report, groups[0], title, subtitle, covered, min_messages)
    figure = Figure(figsize=(10, 5), layout="constrained")
    axes = figure.add_subplot()
    rows = _with_interval(report.sort("period"))
    periods = rows["period"].to_list()
    partial, note = _partial(periods, covered)
    length, _ = _period_length(periods)
    axes.bar(
        periods,
        rows["messages"].to_list(),
        width=0.8 * length,
        color=["#e3e8ea" if flag else "#cfd8dc" for flag in partial],
        edgecolor=["#b0bec5" if flag else "none" for flag in partial],
        linestyle="--",
    )
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_ylabel("messages (bars)")
    rate_axes = axes.twinx()
    _rate_line(rate_axes, rows, partial, DELIVERED_COLOR)
    _fitted(rate_axes, [*rows["delivery_rate_low"], *rows["delivery_rate_high"]], vertical=True)
    rate_axes.set_ylabel("delivery rate (dots, 95 % interval)")
    _heading(figure, axes, title, subtitle, [note])
    figure.autofmt_xdate()
    return figure


def _rate_line(axes: Axes, rows: pl.DataFrame, partial: Sequence[bool], color: str) -> None:
    """Rates as dots with interval bars, a line through the complete periods only."""
    periods = rows["period"].to_list()
    rate = rows["delivery_rate"].to_numpy(allow_copy=True).astype(float)
    whole = np.array([not flag for flag in partial])
    axes.plot(np.array(periods)[whole], rate[whole], color=color, linewidth=1.4)
    errors = [
        np.maximum(rate - rows["delivery_rate_low"].to_numpy().astype(float), 0),
        np.maximum(rows["delivery_rate_high"].to_numpy().astype(float) - rate, 0),
    ]
    axes.errorbar(periods, rate, yerr=errors, fmt="none", ecolor=color, alpha=0.5, capsize=2)
    faces = ["white" if flag else color for flag in partial]
    axes.scatter(periods, rate, s=26, c=faces, edgecolors=color, zorder=3)


def _trend_panels(
    report: pl.DataFrame,
    group: str,
    title: str,
    subtitle: str,
    covered: tuple[date, date] | None,
    min_messages: int,
) -> Figure:
    """One small panel per group, largest first, each rate with its interval."""
    volume = report.group_by(group).agg(
        pl.col("messages").sum(), final=(pl.col("delivered") + pl.col("failed")).sum()
    )
    kept = volume.filter(pl.col("final") >= min_messages).sort("messages", descending=True)
    names = kept[group].to_list()
    every_period = sorted(set(report["period"].to_list()))
    flags, note = _partial(every_period, covered)
    partial_of = dict(zip(every_period, flags, strict=True))
    dropped = volume.height - kept.height
    lines = [
        subtitle,
        note,
        "each panel has its own scale; dashed: the group's rate over the whole period",
    ]
    if dropped:
        lines.append(f"{dropped} {group}(s) with fewer than {min_messages} final messages left out")
    columns = min(4, max(1, len(names)))
    figure = Figure(
        figsize=(12, 2.6 * -(-max(1, len(names)) // columns) + 1.8), layout="constrained"
    )
    panels = _panels(figure, len(names), columns, title, [line for line in lines if line])
    data = _with_interval(report.filter(pl.col(group).is_in(names)).sort("period"))
    locator = AutoDateLocator(maxticks=5)  # type: ignore[no-untyped-call]
    for axes, name in zip(panels, names, strict=True):
        rows = data.filter(pl.col(group) == name)
        partial = [partial_of[period] for period in rows["period"].to_list()]
        _rate_line(axes, rows, partial, CARRIER_COLORS.get(str(name), RATE_COLOR))
        axes.set_title(f"{name}  ({rows['messages'].sum():,} messages)", fontsize=9, loc="left")
        axes.grid(axis="y", color="#eeeeee")
        # Intervals inside the fitted range: a noisy group shows as noise, not as a crash.
        _fitted(axes, [*rows["delivery_rate_low"], *rows["delivery_rate_high"]], vertical=True)
        overall = _overall(rows)
        if overall is not None:
            axes.axhline(overall, color=REFERENCE_COLOR, linestyle="--", linewidth=1, zorder=1)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        axes.tick_params(labelsize=8)
    return figure


def plot_carrier_performance(
    report: pl.DataFrame, *, min_messages: int = MIN_MESSAGES, subtitle: str = ""
) -> Figure:
    """Delivery rate per carrier (dot on its 95% interval) in one panel per message type.

    Each panel's dashed line is the type's overall rate; carriers with fewer
    than ``min_messages`` final messages are grey.
    """
    title = "Delivery rate by carrier (estimated from the number's original prefix)"
    types = report["sms_type"].unique(maintain_order=True).to_list()
    rated = report.filter(pl.col("delivery_rate").is_not_null())
    if rated.height == 0:
        return _empty(_figure(1), title, subtitle)
    columns = 2 if len(types) > 1 else 1
    panel_rows = -(-len(types) // columns)
    most = max(rated.group_by("sms_type").len()["len"].to_list())
    big = rated.filter((pl.col("delivered") + pl.col("failed")) >= min_messages)
    small = rated.height - big.height
    lines = [subtitle, "dashed: the type's rate over every carrier"]
    if small:
        lines.append(f"grey: {small} carrier rows with fewer than {min_messages} final messages")
    figure = Figure(figsize=(11, panel_rows * (0.24 * most + 0.9) + 2.0), layout="constrained")
    panels = _panels(
        figure, len(types), columns, title, [line for line in lines if line], sharex=True
    )
    for axes, sms_type in zip(panels, types, strict=True):
        rows = rated.filter(pl.col("sms_type") == sms_type).sort("delivery_rate")
        tiny = ((rows["delivered"] + rows["failed"]) < min_messages).to_list()
        colors = [
            SMALL_COLOR if is_small else CARRIER_COLORS.get(name, RATE_COLOR)
            for name, is_small in zip(rows["carrier"], tiny, strict=True)
        ]
        _dots(axes, rows, colors, hollow=[False] * rows.height)
        axes.set_yticks(np.arange(rows.height)[::-1], rows["carrier"].to_list(), fontsize=8)
        _reference(axes, _overall(rows), "")
        axes.set_title(f"{sms_type}  ({rows['messages'].sum():,} messages)", fontsize=9, loc="left")
        axes.tick_params(labelbottom=True, labelsize=8)
    _fitted(panels[0], [*big["delivery_rate_low"], *big["delivery_rate_high"]])
    return figure


def plot_failure_hotspots(report: pl.DataFrame, *, subtitle: str = "") -> Figure:
    """Plot the worst campaign x carrier pairs: dot on interval, coloured by carrier.

    The black bar on each row is the campaign's rate over every carrier: a dot far
    to its left is a carrier problem, not a campaign problem.
    """
    group = report.columns[0]  # campaign, or template (failure_hotspots(by=...))
    title = f"Failure hotspots: the worst {group} × carrier delivery rates"
    rows = report.sort("delivery_rate")
    figure = _figure(rows.height)
    if rows.height == 0:
        return _empty(figure, title, subtitle)
    axes = figure.add_subplot()
    colors = [CARRIER_COLORS.get(name, RATE_COLOR) for name in rows["carrier"]]
    _dots(axes, rows, colors, hollow=[False] * rows.height)
    positions = np.arange(rows.height)[::-1]
    axes.scatter(
        rows[f"{group}_delivery_rate"].to_numpy(),
        positions,
        marker="|",
        s=220,
        linewidths=2,
        color="black",
        zorder=4,
    )
    labels = [
        f"{_short(campaign)} · {carrier}"
        for campaign, carrier in rows.select(group, "carrier").iter_rows()
    ]
    axes.set_yticks(positions, labels, fontsize=8.5, fontfamily=FONT_FAMILY)
    _fitted(
        axes,
        [*rows["delivery_rate_low"], *rows["delivery_rate_high"], *rows[f"{group}_delivery_rate"]],
    )
    axes.set_xlabel("delivery rate")
    _heading(figure, axes, title, subtitle, [f"{rows.height} pairs, worst at the top"])
    carrier_handles = [
        _marker(name, CARRIER_COLORS.get(name, RATE_COLOR), CARRIER_COLORS.get(name, RATE_COLOR))
        for name in rows["carrier"].unique(maintain_order=True).to_list()
    ]
    campaign_mark = Line2D(
        [],
        [],
        marker="|",
        linestyle="",
        color="black",
        markersize=12,
        label=f"{group}, all carriers",
    )
    _legend_below(figure, [campaign_mark, *carrier_handles])
    return figure


# -- output ------------------------------------------------------------------------------


def figure_png(figure: Figure, *, dpi: int = 110) -> bytes:
    """Render the figure as PNG bytes (for files, HTML reports and notebooks)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_report(kind: str, report: pl.DataFrame, **options: Any) -> Figure:
    """Plot ``report`` with the plot the registry names for the report ``kind``."""
    plot = globals()[report_spec(kind).plot]
    figure: Figure = plot(report, **options)
    return figure


def plot_format(path: Path) -> str:
    """Return the file format ``path``'s extension asks for: png, svg or pdf.

    >>> plot_format(Path("delivery.SVG"))
    'svg'
    """
    suffix = path.suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise ConfigError(
            f"cannot write a plot as {path.name!r}: use a name ending in {', '.join(PLOT_FORMATS)}"
        )
    return PLOT_FORMATS[suffix]


def save_figure(figure: Figure, path: Path, *, dpi: int = 110) -> None:
    """Write the figure at ``path`` as PNG, SVG or PDF, by its extension (0640, whatever the umask)."""
    form = plot_format(path)
    with open_file(path) as file:
        figure.savefig(file, format=form, dpi=dpi)
