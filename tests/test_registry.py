"""One registry of reports drives the CLI, the HTML bundle and the plots."""

from __future__ import annotations

import inspect
import io
import re
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import ConfigError, reports
from esms_analytics.bundle import write_bundle
from esms_analytics.cli import build_parser, main
from esms_analytics.codes import TIME_ZONE
from esms_analytics.lake import read_lake
from esms_analytics.plots import figure_png, plot_report
from esms_analytics.registry import DIMENSION_NAMES, REPORTS, report_spec
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "lake"
    with Simulator(now=NOW, daily_volume=400, days=12) as sim, sim.client() as client:
        sync(
            path,
            NOW.date() - timedelta(days=12),
            NOW.date(),
            client=client,
            progress=False,
            now=sim.clock.now(),
        )
    return path


def test_each_report_is_declared_once_with_its_function_options_and_plot() -> None:
    assert list(REPORTS) == ["delivery", "cost", "trend", "carriers", "hotspots"]
    assert {spec.function for spec in REPORTS.values()} == {
        reports.delivery,
        reports.cost_breakdown,
        reports.delivery_trend,
        reports.carrier_performance,
        reports.failure_hotspots,
    }
    for spec in REPORTS.values():
        parameters = inspect.signature(spec.function).parameters
        for option in spec.options:  # every declared option is a keyword of the function
            assert option.name in parameters
            assert spec.defaults[option.name] == parameters[option.name].default
        assert callable(getattr(__import__("esms_analytics.plots").plots, spec.plot))
        assert set(spec.bundle) <= {option.name for option in spec.options}
    assert REPORTS["hotspots"].defaults == {"by": "campaign", "min_messages": 100, "top": 20}
    assert DIMENSION_NAMES == reports.DIMENSIONS  # spelled out for a light --help


def test_a_report_refuses_an_option_of_another_report() -> None:
    with pytest.raises(ConfigError, match="--top does not apply to the cost report"):
        REPORTS["cost"].compute(pl.DataFrame(), top=3)
    with pytest.raises(ConfigError, match="no 'weather' report"):
        report_spec("weather")


def test_the_cli_report_options_come_from_the_registry() -> None:
    report = build_parser().commands["report"]
    flags = {flag for action in report._actions for flag in action.option_strings}
    for spec in REPORTS.values():
        for option in spec.options:
            assert option.flag in flags
    assert set(report._actions[1].choices or ()) == {*REPORTS, "html"}  # the KIND argument
    help_text = report.format_help()
    assert "(default 100)" in help_text
    assert "week" in help_text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["delivery"], lambda f: reports.delivery_by_campaign(f)),
        (["delivery", "--by", "campaign"], lambda f: reports.delivery_by_campaign(f)),
        (["delivery", "--by", "carrier,date"], lambda f: reports.delivery(f, ["carrier", "date"])),
        (
            ["delivery", "--by", "carrier", "--by", "week"],
            lambda f: reports.delivery(f, ["carrier", "week"]),
        ),
        (
            ["cost", "--by", "month,sms_type", "--totals"],
            lambda f: reports.cost_breakdown(f, ["month", "sms_type"], totals=True),
        ),
        (
            ["trend", "--every", "1w", "--by", "carrier"],
            lambda f: reports.delivery_trend(f, "1w", "carrier"),
        ),
        (["carriers"], lambda f: reports.carrier_performance(f)),
        (
            ["hotspots", "--min-messages", "5", "--top", "3"],
            lambda f: reports.failure_hotspots(f, min_messages=5, top=3),
        ),
        (["hotspots", "--top", "0"], lambda f: reports.failure_hotspots(f, top=0)),
    ],
)
def test_every_cli_option_reaches_the_report(
    lake: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected
) -> None:  # type: ignore[no-untyped-def]
    code = main(["report", *argv, "--lake", str(lake), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    table = pl.read_csv(io.StringIO(out), try_parse_dates=True).with_columns(
        pl.col(pl.Datetime).dt.convert_time_zone(TIME_ZONE).dt.cast_time_unit("us")
    )
    want = expected(read_lake(lake))
    assert table.columns == want.columns
    assert table.height == want.height
    assert_frame_equal(table, want, check_dtypes=False)


def test_time_dimensions_read_chronologically_in_every_format(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for form in ("csv", "json", "table"):
        main(["report", "delivery", "--by", "date", "--lake", str(lake), "--format", form])
        out, _ = capsys.readouterr()
        days = re.findall(r"\b2026-\d\d-\d\d\b(?![ T]\d)", out)  # days, not instants
        assert len(days) > 5, form
        assert days == sorted(days), form


def test_the_bundle_and_the_plots_follow_the_registry(lake: Path, tmp_path: Path) -> None:
    bundle = write_bundle(read_lake(lake), tmp_path, source=str(lake), title="t")
    assert set(bundle.tables) == set(REPORTS)
    assert bundle.tables["cost"]["campaign"][-1] == "(total)"  # the registry's bundle option
    page = (tmp_path / "report.html").read_text("utf-8")
    for spec in REPORTS.values():
        assert spec.note.split(";")[0].replace("'", "&#x27;") in page or spec.kind == "trend"
    for kind, table in bundle.tables.items():
        assert (tmp_path / f"{kind}.png").stat().st_size > 5_000
        assert figure_png(plot_report(kind, table)).startswith(b"\x89PNG")
    by_carrier_and_day = reports.delivery(read_lake(lake), by=["carrier", "date"])
    assert figure_png(plot_report("delivery", by_carrier_and_day)).startswith(b"\x89PNG")
