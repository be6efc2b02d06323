"""Plots that do not mislead: what they show, what they say they left out, and no text on text."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from esms_analytics import plots
from esms_analytics.bundle import Selection, compute_reports, plot_report
from esms_analytics.cli import main
from esms_analytics.lake import read_lake
from esms_analytics.reports import delivery_by_campaign, delivery_trend

from .conftest import REPORT_END, REPORT_START

SELECTION = Selection(REPORT_START - timedelta(days=7), REPORT_END, sms_types=(1, 2, 24, 25))


@pytest.fixture(scope="module")
def tables(report_lake: Path) -> dict[str, pl.DataFrame]:
    return compute_reports(read_lake(report_lake), SELECTION)


def drawn(figure: Figure) -> Any:
    FigureCanvasAgg(figure)
    figure.canvas.draw()
    return figure.canvas.get_renderer()  # type: ignore[attr-defined]


def texts(figure: Figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text) if text.get_text().strip()]


def _in_view(axis: Any, location: float) -> bool:
    low, high = sorted(axis.get_view_interval())
    return bool(low - 1e-9 <= location <= high + 1e-9)


def shown_texts(figure: Figure) -> list[Text]:
    """Every piece of text the figure draws: titles, labels, tick labels in view, legends."""
    found = [*figure.texts]
    found += [getattr(figure, name) for name in ("_suptitle", "_supxlabel", "_supylabel")]
    for axes in figure.axes:
        found += [axes.title, axes._left_title, axes._right_title, *axes.texts]
        if not axes.axison:
            continue
        for axis in (axes.xaxis, axes.yaxis):
            if not axis.get_visible():
                continue
            found += [axis.label, axis.get_offset_text()]
            for tick in axis.get_major_ticks():
                if _in_view(axis, tick.get_loc()):
                    found += [tick.label1, tick.label2]
    for legend in legends_of(figure):
        found += legend.get_texts()
    unique = {id(text): text for text in found if text is not None}.values()
    return [text for text in unique if text.get_visible() and text.get_text().strip()]


def legends_of(figure: Figure) -> list[Any]:
    return [*figure.legends, *(a.get_legend() for a in figure.axes if a.get_legend())]


def clashes(figure: Figure) -> list[str]:
    """Legends over any axes, texts over each other, texts cut off by the figure's edge."""
    renderer = drawn(figure)
    frame = figure.bbox
    found = []
    for legend in legends_of(figure):
        box = legend.get_window_extent(renderer)
        for axes in figure.axes:
            if axes.axison and box.overlaps(axes.get_window_extent(renderer)):
                found.append(f"legend over axes {axes.get_title(loc='left')[:30]!r}")
    shown = [(text, text.get_window_extent(renderer)) for text in shown_texts(figure)]
    for text, box in shown:
        if box.x0 < -1 or box.y0 < -1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1:
            found.append(f"cut off: {text.get_text()!r}")
    for (one, first), (other, second) in itertools.combinations(shown, 2):
        if first.overlaps(second):
            found.append(f"{one.get_text()!r} over {other.get_text()!r}")
    return found


@pytest.mark.parametrize("name", ["delivery", "cost", "trend", "carriers", "hotspots"])
def test_each_plot_names_its_selection_and_has_no_text_over_text_or_data(
    tables: dict[str, pl.DataFrame], name: str
) -> None:
    figure = plot_report(name, tables[name], SELECTION)
    words = "\n".join(texts(figure))
    assert f"{SELECTION.start} – {SELECTION.end} (14 days)" in words
    assert "advertising, customer_care, zalo_priority, zalo_normal" in words
    assert clashes(figure) == []


def test_trend_by_carrier_is_panels_with_intervals_and_small_groups_left_out(
    report_lake: Path,
) -> None:
    trend = delivery_trend(read_lake(report_lake), every="1d", by="carrier")
    figure = plots.plot_delivery_trend(trend, subtitle="two weeks", min_messages=150)
    final = trend.group_by("carrier").agg((pl.col("delivered") + pl.col("failed")).sum())
    small = final.filter(pl.col("delivered") < 150).height
    assert small > 0
    panels = [axes for axes in figure.axes if axes.axison]
    assert len(panels) == final.height - small
    assert f"{small} carrier(s) with fewer than 150 final messages left out" in "\n".join(
        texts(figure)
    )
    assert clashes(figure) == []


def test_delivery_shows_the_worst_when_not_all_fit_and_says_so(
    tables: dict[str, pl.DataFrame],
) -> None:
    report = tables["delivery"]
    figure = plots.plot_delivery_by_campaign(report, top=8, min_messages=40, subtitle="s")
    axes = figure.axes[0]
    labels = [label.get_text().split("  (")[0] for label in axes.get_yticklabels()]
    ranked = report.filter((pl.col("delivered") + pl.col("failed")) >= 40)
    worst = ranked.sort("delivery_rate").head(4)["campaign"].to_list()
    assert len(labels) == 8
    assert set(worst) <= set(labels)
    assert labels[0] == worst[0]  # the worst at the top
    words = "\n".join(texts(figure))
    assert f"8 of {report.height} campaigns (all in the table)" in words
    small = report.height - ranked.height
    if small:
        assert f"{small} campaigns with fewer than 40 final messages left out" in words
    # Sorted by rate, top to bottom.
    shown = ranked.filter(pl.col("campaign").is_in(labels)).sort("delivery_rate")
    assert labels == shown["campaign"].to_list()


def test_delivery_axis_is_fitted_with_the_overall_rate_and_provisional_hollow(
    tables: dict[str, pl.DataFrame],
) -> None:
    report = tables["delivery"]
    figure = plots.plot_delivery_by_campaign(report, top=100, subtitle="s")
    axes = figure.axes[0]
    shown = report.filter((pl.col("delivered") + pl.col("failed")) >= plots.MIN_MESSAGES)
    low, high = axes.get_xlim()
    assert low > 0.05  # not 0-100 %: the rates are far above 0
    assert low <= shown["delivery_rate_low"].min() <= shown["delivery_rate_high"].max() <= high  # type: ignore[operator]
    overall = report["delivered"].sum() / (report["delivered"].sum() + report["failed"].sum())
    assert any(line.get_xdata()[0] == pytest.approx(overall) for line in axes.get_lines())
    assert f"all campaigns {overall:.1%}" in "\n".join(texts(figure))
    dots = axes.collections[-1]
    faces = dots.get_facecolors()
    provisional = shown.sort(["delivery_rate", "messages"], descending=[False, True])[
        "provisional"
    ].to_list()[: len(faces)]
    assert any(provisional)
    for face, is_provisional in zip(faces, provisional, strict=True):
        assert (tuple(face[:3]) == (1.0, 1.0, 1.0)) == is_provisional


def test_partial_weeks_of_a_trend_are_faded_and_named(report_lake: Path) -> None:
    # A Wednesday to a Tuesday: both the first and the last ISO week are cut.
    start = date(2026, 11, 11)
    end = date(2026, 11, 17)
    trend = delivery_trend(read_lake(report_lake), every="1w", start=start, end=end)
    figure = plots.plot_delivery_trend(trend, subtitle="s", covered=(start, end))
    words = "\n".join(texts(figure))
    assert "partial weeks (2026-11-09, 2026-11-16)" in words
    bars = figure.axes[0].patches
    assert len(bars) == 2
    assert all(bar.get_facecolor() != (0.812, 0.847, 0.863, 1.0) for bar in bars)
    whole = plots.plot_delivery_trend(trend, subtitle="s", covered=(date(2026, 11, 9), end))
    assert "partial week (2026-11-16)" in "\n".join(texts(whole))


def test_small_carriers_are_grey_and_said_so(tables: dict[str, pl.DataFrame]) -> None:
    report = tables["carriers"]
    figure = plots.plot_carrier_performance(report, min_messages=60, subtitle="s")
    small = report.filter(
        pl.col("delivery_rate").is_not_null() & ((pl.col("delivered") + pl.col("failed")) < 60)
    ).height
    assert small > 0
    assert f"grey: {small} carrier rows with fewer than 60 final messages" in "\n".join(
        texts(figure)
    )


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg"), (".pdf", b"%PDF-")]
)
def test_plot_writes_the_type_its_extension_names(
    report_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    magic: bytes,
) -> None:
    target = tmp_path / f"delivery{suffix}"
    code = main(["report", "delivery", "--lake", str(report_lake), "--plot", str(target)])
    assert code == 0
    head = target.read_bytes()[:400]
    assert magic in head if suffix == ".svg" else head.startswith(magic)
    assert str(target) in capsys.readouterr().err


@pytest.mark.parametrize("name", ["delivery.jpg", "delivery", "delivery.html"])
def test_plot_refuses_other_extensions_before_any_work(
    report_lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code = main(["report", "delivery", "--lake", str(report_lake), "--plot", str(tmp_path / name)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert ".png, .svg, .pdf" in err
    assert list(tmp_path.iterdir()) == []


def test_delivery_by_campaign_plot_keeps_working_on_a_bare_report(report_lake: Path) -> None:
    figure = plots.plot_delivery_by_campaign(delivery_by_campaign(read_lake(report_lake)))
    assert clashes(figure) == []


def test_the_clash_check_sees_a_legend_over_data_and_text_over_text() -> None:
    figure = Figure(figsize=(4, 3))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], label="a line")
    axes.legend(loc="center")
    axes.text(0.1, 0.9, "one label", transform=axes.transAxes)
    axes.text(0.12, 0.9, "another label", transform=axes.transAxes)
    found = clashes(figure)
    assert any(item.startswith("legend over axes") for item in found)
    assert "'one label' over 'another label'" in found
