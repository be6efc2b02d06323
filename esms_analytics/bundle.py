"""The standard set of reports over one selection: the HTML page, its plots, the workbook.

The page reads the way a manager does: what it covers (period, message
types, campaigns, lake), the headline figures against the previous period of
the same length, the worst campaign x carrier hotspots, then every report
with its plot and all its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from esms_analytics import plots, render, reports
from esms_analytics.codes import SMS_TYPES, VN_TZ
from esms_analytics.errors import ConfigError
from esms_analytics.registry import REPORTS

#: The order of the page: the worst first, then each report.
PAGE_ORDER: Final = ("hotspots", "delivery", "cost", "trend", "carriers")
_EVERY_NAMES: Final = {"1d": "Daily", "1w": "Weekly", "1mo": "Monthly"}


@dataclass(frozen=True)
class Selection:
    """Which messages a report covers: creation days, message types, campaigns.

    ``None`` means no filter. Every report of a bundle gets the same selection.
    """

    start: date | None = None
    end: date | None = None
    sms_types: tuple[int, ...] | None = None
    campaigns: tuple[str, ...] | None = None

    def filters(self) -> dict[str, Any]:
        """Return the keyword arguments every report function takes for this selection."""
        return {
            "start": self.start,
            "end": self.end,
            "sms_types": None if self.sms_types is None else list(self.sms_types),
            "campaigns": None if self.campaigns is None else list(self.campaigns),
        }

    @property
    def days(self) -> int:
        """The number of days from start to end, both included (0 if open-ended)."""
        if self.start is None or self.end is None:
            return 0
        return (self.end - self.start).days + 1

    def previous(self) -> Selection:
        """Return the period of the same length just before this one (same types, campaigns)."""
        if self.start is None:
            raise ConfigError("a selection without a start has no previous period")
        length = timedelta(days=self.days)
        return replace(self, start=self.start - length, end=self.start - timedelta(days=1))

    def period_text(self) -> str:
        """Say the period: ``2026-11-01 – 2026-11-30 (30 days)``."""
        if self.start is None or self.end is None:
            return "every day in the lake"
        plural = "day" if self.days == 1 else "days"
        return f"{self.start} – {self.end} ({self.days} {plural})"

    def types_text(self) -> str:
        """Say the message types: their labels, or that no filter applies."""
        if self.sms_types is None:
            return "every type"
        return ", ".join(SMS_TYPES.get(code, str(code)) for code in self.sms_types)

    def describe(self) -> str:
        """One line for subtitles: period, message types and campaigns."""
        parts = [self.period_text(), self.types_text()]
        if self.campaigns is not None:
            parts.append("campaign " + ", ".join(self.campaigns))
        return " · ".join(parts)

    def resolved(self, frame: reports.AnyFrame) -> Selection | None:
        """Fill an open start or end from the data; ``None`` when nothing matches."""
        days = reports.delivery_trend(frame, every="1d", **self.filters())["period"]
        if days.is_empty():
            return None
        return replace(self, start=self.start or days.min(), end=self.end or days.max())


@dataclass(frozen=True)
class Totals:
    """The headline counts and amounts of one selection."""

    messages: int
    delivered: int
    failed: int
    pending: int
    cost_vnd: float
    cost_failed_vnd: float

    @property
    def rate(self) -> float | None:
        """Delivered over final messages, None when none is final."""
        final = self.delivered + self.failed
        return self.delivered / final if final else None

    @property
    def cost_per_delivered_vnd(self) -> float | None:
        """All spend over delivered messages, None when none was delivered."""
        return self.cost_vnd / self.delivered if self.delivered else None

    def interval(self) -> tuple[float | None, float | None]:
        """Return the rate's 95% Wilson interval, by the reports' formula."""
        row = pl.DataFrame({"delivered": [self.delivered], "failed": [self.failed]})
        bounds = reports.add_wilson_interval(row).row(0, named=True)
        return bounds["delivery_rate_low"], bounds["delivery_rate_high"]


def totals(frame: reports.AnyFrame, selection: Selection) -> Totals:
    """Add up messages, outcomes and spend over the selection."""
    trend = reports.delivery_trend(frame, every="1mo", **selection.filters())
    cost = reports.cost_breakdown(frame, by="sms_type", **selection.filters())
    messages, delivered, failed, pending = (
        int(trend[name].sum() or 0) for name in ("messages", "delivered", "failed", "pending")
    )
    return Totals(
        messages,
        delivered,
        failed,
        pending,
        cost_vnd=float(cost["cost_vnd"].sum()),
        cost_failed_vnd=float(cost["cost_failed_vnd"].sum()),
    )


def _change(now: float | None, before: float | None, *, shown: str, points: bool = False) -> str:
    if now is None or before is None:
        return ""
    if points:
        return f"{(now - before) * 100:+.1f} points vs {shown}"
    if before == 0:
        return f"vs {shown}"
    return f"{(now - before) / before * 100:+.1f} % vs {shown}"


def headlines(current: Totals, previous: Totals, period: Selection) -> list[render.Headline]:
    """Word the five figures a manager reads first, each against the previous period."""
    low, high = current.interval()
    earlier = f"the previous {period.days} days"

    def compared(now: float | None, before: float | None, shown: str, points: bool = False) -> str:
        if previous.messages == 0:
            return f"no messages in {earlier}"
        return _change(now, before, shown=shown, points=points)

    failed_share = current.cost_failed_vnd / current.cost_vnd if current.cost_vnd else None
    return [
        render.Headline(
            "Messages",
            f"{current.messages:,}",
            f"{current.pending:,} still pending" if current.pending else "none pending",
            compared(current.messages, previous.messages, f"{previous.messages:,} in {earlier}"),
        ),
        render.Headline(
            "Delivery rate",
            render.percent(current.rate),
            f"95 % interval {render.interval(low, high)}",
            compared(current.rate, previous.rate, render.percent(previous.rate), points=True),
        ),
        render.Headline(
            "Spend",
            f"{render.vnd(current.cost_vnd)} ₫",
            "",
            compared(current.cost_vnd, previous.cost_vnd, f"{render.vnd(previous.cost_vnd)} ₫"),
        ),
        render.Headline(
            "Spend on failed messages",
            f"{render.vnd(current.cost_failed_vnd)} ₫",
            f"{render.percent(failed_share)} of spend",
            compared(
                current.cost_failed_vnd,
                previous.cost_failed_vnd,
                f"{render.vnd(previous.cost_failed_vnd)} ₫",
            ),
        ),
        render.Headline(
            "Cost per delivered message",
            f"{render.vnd(current.cost_per_delivered_vnd)} ₫",
            "all spend over delivered messages",
            compared(
                current.cost_per_delivered_vnd,
                previous.cost_per_delivered_vnd,
                f"{render.vnd(previous.cost_per_delivered_vnd)} ₫",
            ),
        ),
    ]


def trend_every(selection: Selection) -> reports.TrendEvery:
    """Days for a month or less, weeks up to half a year, months beyond."""
    if selection.days <= 31:
        return "1d"
    return "1w" if selection.days <= 183 else "1mo"


def compute_reports(frame: reports.AnyFrame, selection: Selection) -> dict[str, pl.DataFrame]:
    """Every report of the bundle over ``selection``, in page order."""
    chosen = {"trend": {"every": trend_every(selection)}}  # the period follows the selection
    return {
        name: REPORTS[name].compute(
            frame, **{**REPORTS[name].bundle, **chosen.get(name, {})}, **selection.filters()
        )
        for name in PAGE_ORDER
    }


def plot_report(name: str, table: pl.DataFrame, selection: Selection) -> Any:
    """Plot report ``name`` with the selection in its subtitle.

    A trend also learns which days are complete: today is still running, so its
    period is marked partial like a week the selection cuts.
    """
    options: dict[str, Any] = {"subtitle": selection.describe()}
    if name == "trend" and selection.start is not None and selection.end is not None:
        yesterday = datetime.now(VN_TZ).date() - timedelta(days=1)
        options["covered"] = (selection.start, min(selection.end, yesterday))
    return plots.plot_report(name, table, **options)


def _section(name: str, table: pl.DataFrame, selection: Selection) -> render.Section:
    spec = REPORTS[name]
    title = spec.title
    if name == "trend":
        title = f"{_EVERY_NAMES[trend_every(selection)]} delivery trend"
    png = plots.figure_png(plot_report(name, table, selection))
    return render.Section(title, spec.note, table, png, anchor=name)


@dataclass
class Bundle:
    """What :func:`write_report` or :func:`write_bundle` produced."""

    selection: Selection
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    pngs: dict[str, Path] = field(default_factory=dict)
    html: Path | None = None


def lake_extent(frame: reports.AnyFrame) -> str:
    """Say what the whole lake holds: its first and last day and its messages."""
    row = (
        frame.lazy()
        .select(first=pl.col("date").min(), last=pl.col("date").max(), rows=pl.len())
        .collect()
        .row(0)
    )
    if not row[2]:
        return "empty"
    return f"{row[0]} – {row[1]}, {row[2]:,} messages"


def _covered(frame: reports.AnyFrame, selection: Selection, source: str) -> Selection:
    covered = selection.resolved(frame)
    if covered is None:
        raise ConfigError(
            f"no messages in {source} match {selection.describe()}; nothing written. "
            "Widen --from/--to, --sms-type or --campaign, or sync the lake first"
        )
    return covered


def build_page(
    frame: reports.AnyFrame, selection: Selection, *, source: str, title: str
) -> tuple[str, Bundle]:
    """Compute the bundle over ``selection`` and render its HTML page.

    Raises :class:`ConfigError` when no message matches: an empty page forwarded
    to a manager reads as "nothing happened", which is not what it means.
    """
    covered = _covered(frame, selection, source)
    tables = compute_reports(frame, covered)
    current, previous = totals(frame, covered), totals(frame, covered.previous())
    before = covered.previous()
    # The types the data holds, not the filter: "every type" says less than a list.
    present = reports.cost_breakdown(frame, by="sms_type", **covered.filters())["sms_type"]
    facts = [
        ("Period", f"{covered.period_text()}, Vietnam time"),
        ("Message types", ", ".join(str(label) for label in present.to_list())),
        ("Campaigns", "all" if covered.campaigns is None else ", ".join(covered.campaigns)),
        ("Lake", f"{source} ({lake_extent(frame)})"),
        ("Compared with", before.period_text()),
    ]
    sections = [_section(name, tables[name], covered) for name in PAGE_ORDER]
    page = render.Page(
        title,
        facts,
        headlines(current, previous, covered),
        sections,
        footer=f"Generated {datetime.now(VN_TZ):%Y-%m-%d %H:%M} (Vietnam time) by esms-analytics. "
        "Rates exclude messages still pending; VND as eSMS reports sell_price.",
    )
    return render.html_page(page), Bundle(covered, tables)


def write_report(
    frame: reports.AnyFrame,
    path: Path,
    selection: Selection = Selection(),
    *,
    source: str,
    title: str = "eSMS delivery and cost report",
) -> Bundle:
    """Write the HTML page at exactly ``path`` (``.html``); nothing else is written."""
    render.check_output(path, (".html",))
    text, bundle = build_page(frame, selection, source=source, title=title)
    render.write_text_exactly(path, text)
    bundle.html = path
    return bundle


def write_workbook(
    frame: reports.AnyFrame,
    path: Path,
    selection: Selection = Selection(),
    *,
    source: str,
) -> Bundle:
    """Write every report of the page as one sheet each of an Excel workbook at ``path``."""
    render.check_output(path, (".xlsx",))
    covered = _covered(frame, selection, source)
    tables = compute_reports(frame, covered)
    render.write_workbook(tables, path)
    return Bundle(covered, tables)


def write_bundle(
    frame: reports.AnyFrame,
    out_dir: Path,
    selection: Selection = Selection(),
    *,
    source: str,
    title: str = "eSMS delivery and cost report",
) -> Bundle:
    """Write ``report.html`` and one PNG per report into ``out_dir`` (the demo's folder)."""
    # write_report makes out_dir (0750) when it is missing.
    bundle = write_report(frame, out_dir / "report.html", selection, source=source, title=title)
    for name, table in bundle.tables.items():
        path = out_dir / f"{name}.png"
        png = plots.figure_png(plot_report(name, table, bundle.selection))
        render.write_bytes_exactly(path, png)
        bundle.pngs[name] = path
    return bundle
