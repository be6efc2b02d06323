"""Arguments mean the same everywhere: the table of issue 12, in the library and the CLI.

Each row was a raw engine error, a TypeError or a silently empty answer before;
now it works as a new user expects, or fails with one ConfigError (or
LakeError) that names the argument and what it accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import ConfigError, EsmsError, LakeError, read_lake
from esms_analytics.cli import main
from esms_analytics.codes import VN_TZ
from esms_analytics.reports import (
    cost_breakdown,
    delivery,
    delivery_by_campaign,
    delivery_trend,
    failure_hotspots,
)
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW

START = NOW.date() - timedelta(days=6)
CAMPAIGN = "OTP đăng nhập"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arguments") / "lake"
    with Simulator(now=NOW, daily_volume=300, days=10) as sim, sim.client() as client:
        sync(path, START, NOW.date(), client=client, progress=False, now=sim.clock.now())
    return path


# -- what works now ----------------------------------------------------------------


def test_a_report_takes_its_start_as_a_string(lake: Path) -> None:
    day = NOW.date() - timedelta(days=2)
    by_string = delivery_by_campaign(read_lake(lake), start=day.isoformat())
    assert by_string.height > 0
    assert_frame_equal(by_string, delivery_by_campaign(read_lake(lake), start=day))
    assert_frame_equal(by_string, delivery_by_campaign(read_lake(lake, start=day)))


def test_one_campaign_name_is_one_campaign_not_its_letters(lake: Path) -> None:
    report = delivery_by_campaign(read_lake(lake), campaigns=CAMPAIGN)
    assert report["campaign"].to_list() == [CAMPAIGN]
    assert_frame_equal(report, delivery_by_campaign(read_lake(lake), campaigns=[CAMPAIGN]))


@pytest.mark.parametrize(
    "sms_types", [["customer_care"], ("2",), 2, "2", "customer_care", {2}, [2, "2"]]
)
def test_sms_types_as_codes_labels_single_or_many(lake: Path, sms_types: Any) -> None:
    frame = read_lake(lake, sms_types=sms_types).collect()
    assert frame.height > 0
    assert frame["sms_type"].unique().to_list() == [2]
    report = delivery_by_campaign(read_lake(lake), sms_types=sms_types)
    assert_frame_equal(report, delivery_by_campaign(read_lake(lake), sms_types=[2]))


def test_read_lake_takes_a_datetime_as_its_vietnam_day(lake: Path) -> None:
    day = NOW.date() - timedelta(days=2)
    aware = datetime(day.year, day.month, day.day, 17, 30, tzinfo=VN_TZ).astimezone(
        datetime.now().astimezone().tzinfo
    )
    for start in (datetime(day.year, day.month, day.day, 9, 0), aware, f"{day}T09:00:00"):
        frame = read_lake(lake, start=start).collect()
        assert frame["date"].min() == day


def test_a_report_takes_a_lake_location(lake: Path) -> None:
    assert_frame_equal(delivery_by_campaign(str(lake)), delivery_by_campaign(read_lake(lake)))
    assert_frame_equal(delivery(lake, by="carrier"), delivery(read_lake(lake), by="carrier"))


# -- what fails, with one clear error --------------------------------------------------


FAILURES: list[tuple[str, Callable[[Path], object], type[EsmsError], list[str]]] = [
    (
        "unknown type code",
        lambda lake: read_lake(lake, sms_types=[3]),
        ConfigError,
        ["sms_types", "3", "customer_care"],
    ),
    (
        "unknown type label",
        lambda lake: delivery_by_campaign(lake, sms_types="sms"),
        ConfigError,
        ["sms_types", "'sms'", "advertising"],
    ),
    (
        "a type that is not a code",
        lambda lake: read_lake(lake, sms_types=2.0),  # type: ignore[arg-type]
        ConfigError,
        ["sms_types=2.0", "code or label"],
    ),
    (
        "an empty list of types",
        lambda lake: read_lake(lake, sms_types=[]),
        ConfigError,
        ["sms_types is empty", "None for all"],
    ),
    (
        "a date in another form",
        lambda lake: read_lake(lake, start="1/11/2026"),
        ConfigError,
        ["start='1/11/2026'", "YYYY-MM-DD"],
    ),
    (
        "a number as a date",
        lambda lake: delivery_by_campaign(lake, end=20261101),
        ConfigError,
        ["end=20261101", "a datetime"],
    ),  # type: ignore[arg-type]
    (
        "a reversed range",
        lambda lake: delivery_by_campaign(lake, start="2026-11-02", end="2026-11-01"),
        ConfigError,
        ["end=2026-11-01 is before start=2026-11-02"],
    ),
    (
        "campaigns that are not names",
        lambda lake: delivery_by_campaign(lake, campaigns=[1]),
        ConfigError,
        ["campaigns=[1]", "campaign name"],
    ),  # type: ignore[list-item]
    (
        "trend by a dimension it has not",
        lambda lake: delivery_trend(lake, by="bogus"),  # type: ignore[arg-type]
        ConfigError,
        ["by='bogus'", "carrier, sms_type, campaign"],
    ),
    (
        "trend every a period it has not",
        lambda lake: delivery_trend(lake, every="2w"),  # type: ignore[arg-type]
        ConfigError,
        ["every='2w'", "1d, 1w, 1mo"],
    ),
    (
        "cost by a dimension it has not",
        lambda lake: cost_breakdown(lake, by=["carrier", "planet"]),  # type: ignore[list-item]
        ConfigError,
        ["by has 'planet'", "campaign, template, sms_type, carrier, date, week or month"],
    ),
    ("a dimension twice", lambda lake: delivery(lake, by=["date", "date"]), ConfigError, ["twice"]),
    (
        "a negative top",
        lambda lake: failure_hotspots(lake, top=-1),
        ConfigError,
        ["top=-1", "at least 0"],
    ),
    (
        "a negative min_messages",
        lambda lake: failure_hotspots(lake, min_messages=-5),
        ConfigError,
        ["min_messages=-5"],
    ),
    (
        "a count that is not a number",
        lambda lake: failure_hotspots(lake, top="5"),
        ConfigError,
        ["top='5'"],
    ),  # type: ignore[arg-type]
    (
        "totals that is not a flag",
        lambda lake: cost_breakdown(lake, totals="yes"),
        ConfigError,
        ["totals='yes'"],
    ),  # type: ignore[arg-type]
    (
        "a frame missing columns",
        lambda lake: delivery_by_campaign(pl.DataFrame({"a": [1]})),
        ConfigError,
        ["delivery_by_campaign needs", "campaign", "send_result", "sent_at", "date"],
    ),
    (
        "something that is not a frame",
        lambda lake: delivery_by_campaign([1, 2]),  # type: ignore[arg-type]
        ConfigError,
        ["Polars, pandas, DuckDB or Spark frame", "list"],
    ),
    (
        "the lake's sms/ folder",
        lambda lake: read_lake(lake / "sms"),
        LakeError,
        ["inside a lake", "_manifest.json"],
    ),
    (
        "the sms/ folder through a report",
        lambda lake: delivery_by_campaign(f"{lake}/sms"),
        LakeError,
        ["inside a lake"],
    ),
    (
        "a folder that is not a lake",
        lambda lake: read_lake(lake.parent),
        LakeError,
        ["is not a lake", "_manifest.json"],
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_bad_arguments_raise_one_error_naming_the_argument(
    lake: Path, call: Callable[[Path], object], error: type[EsmsError], words: list[str]
) -> None:
    with pytest.raises(error) as raised:
        call(lake)
    message = str(raised.value)
    assert type(raised.value) is error
    for word in words:
        assert word in message
    assert "\n" not in message


def test_date_helpers_accept_every_form() -> None:
    from esms_analytics.arguments import to_date

    assert {
        to_date(value) for value in ("2026-11-01", date(2026, 11, 1), datetime(2026, 11, 1, 23))
    } == {date(2026, 11, 1)}


# -- the same cases through the command line -----------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exited:  # argparse's own errors exit
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["delivery", "--from", str(NOW.date() - timedelta(days=2))],
        ["delivery", "--campaign", CAMPAIGN],
        ["delivery", "--sms-type", "customer_care"],
        ["delivery", "--sms-type", "2"],
        ["delivery", "--from", f"{NOW.date() - timedelta(days=2)}T09:00:00"],
    ],
)
def test_the_cli_accepts_what_the_library_accepts(
    lake: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, "report", *argv, "--lake", str(lake), "--format", "csv")
    assert code == 0, err
    assert len(out.splitlines()) > 1


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (["delivery", "--sms-type", "3"], 2, ["3", "customer_care"]),
        (["delivery", "--from", "1/11/2026"], 2, ["1/11/2026", "YYYY-MM-DD"]),
        (["delivery", "--from", "2026-11-02", "--to", "2026-11-01"], 2, ["before"]),
        (["trend", "--by", "bogus"], 2, ["bogus", "carrier"]),
        (["cost", "--by", "carrier,planet"], 2, ["planet", "month"]),
        (["hotspots", "--min-messages", "-1"], 2, ["min_messages=-1"]),
        (["hotspots", "--top", "-1"], 2, ["top=-1", "at least 0"]),
        (["hotspots", "--top", "many"], 2, ["'many' is not a whole number"]),
        (["trend", "--every", "2w"], 2, ["every='2w'", "1d, 1w, 1mo"]),
        (["carriers", "--by", "carrier"], 2, ["--by does not apply to the carriers report"]),
        (["delivery", "--lake-sms"], 5, ["inside a lake", "_manifest.json"]),
        (["delivery", "--not-a-lake"], 5, ["is not a lake"]),
    ],
)
def test_the_cli_fails_with_one_line_and_the_documented_code(
    lake: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, words: list[str]
) -> None:
    where = {"--lake-sms": lake / "sms", "--not-a-lake": lake.parent}.get(argv[-1], lake)
    argv = [arg for arg in argv if arg not in ("--lake-sms", "--not-a-lake")]
    exit_code, _, err = run(capsys, "report", *argv, "--lake", str(where))
    assert exit_code == code
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err
