"""Terminal tables that fit, Excel workbooks with typed columns, CSV for tools."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from esms_analytics.cli import main
from esms_analytics.lake import read_lake
from esms_analytics.reports import carrier_performance, cost_breakdown, delivery_by_campaign

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
MINUTE = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d\b")


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", str(width))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("width", [60, 80, 120, 220])
def test_a_terminal_table_fits_the_terminal_key_counts_and_rates_first(
    report_lake: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    code, out, _ = run(capsys, monkeypatch, width, "report", "delivery", "--lake", str(report_lake))
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= width
    header = lines[0].split()
    assert header[:2] == ["campaign", "messages"]
    assert "rate" in header  # "delivery rate" fits even at 60 columns
    report = delivery_by_campaign(read_lake(report_lake))
    assert len([line for line in lines if re.search(r"\d+\.\d %", line)]) == report.height
    if width >= 220:
        assert header[-2:] == ["last", "sent"]
        assert MINUTE.search(out)
        assert not re.search(r"\d\d:\d\d:\d\d", out)  # to the minute, no seconds
    else:
        assert not MINUTE.search(out)
        assert lines[-1].endswith("(--format csv for all)")
        assert "first sent, last sent" in " ".join(lines[-3:])


def test_vnd_prints_as_whole_numbers_and_long_tables_say_how_many_rows_are_left(
    report_lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = str(report_lake)
    code, out, _ = run(capsys, monkeypatch, 200, "report", "cost", "--lake", lake, "--totals")
    assert code == 0
    total = cost_breakdown(read_lake(report_lake), totals=True).row(-1, named=True)
    total_line = next(line for line in out.splitlines() if line.startswith("(total)"))
    assert f"{round(total['cost_vnd']):,}" in total_line
    assert not re.search(r"\d,\d{3}\.\d", out)  # no "11,299,960.0"
    code, out, _ = run(capsys, monkeypatch, 120, "report", "carriers", "--lake", lake)
    rows = carrier_performance(read_lake(report_lake)).height
    assert rows > 40
    assert f"{rows - 40:,} more rows: --format csv for all" in out


def test_report_html_as_xlsx_is_one_typed_sheet_per_report(
    report_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = tmp_path / "week.xlsx"
    argv = ["report", "html", "--lake", str(report_lake), "--format", "xlsx", "--output", str(book)]
    code, out, _ = run(capsys, monkeypatch, 100, *argv)
    assert code == 0
    assert str(book) in out
    assert list(tmp_path.iterdir()) == [book]
    workbook = openpyxl.load_workbook(book)
    assert workbook.sheetnames == ["hotspots", "delivery", "cost", "trend", "carriers"]
    delivery = delivery_by_campaign(read_lake(report_lake))
    sheet = workbook["delivery"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == delivery.columns
    assert len(rows) - 1 == delivery.height
    first = {cell.column_letter: cell for cell in sheet[2]}
    by_name = {name: first[letter] for name, letter in zip(rows[0], "ABCDEFGHIJKL", strict=True)}
    assert by_name["messages"].value == delivery["messages"][0]
    assert by_name["messages"].number_format == "#,##0"
    assert by_name["delivery_rate"].value == pytest.approx(delivery["delivery_rate"][0])
    assert by_name["delivery_rate"].number_format == "0.0%"
    assert isinstance(by_name["first_sent"].value, datetime)
    assert by_name["first_sent"].number_format == "yyyy-mm-dd hh:mm"
    assert by_name["provisional"].value is delivery["provisional"][0]
    cost = workbook["cost"]
    header = [cell.value for cell in cost[1]]
    assert cost.cell(2, header.index("cost_vnd") + 1).number_format == "#,##0"


def test_one_report_as_xlsx_needs_an_xlsx_output(
    report_lake: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = ["report", "cost", "--lake", str(report_lake), "--format", "xlsx"]
    code, _, err = run(capsys, monkeypatch, 100, *base)
    assert code == 2
    assert "--output FILE.xlsx" in err
    code, _, err = run(capsys, monkeypatch, 100, *base, "--output", str(tmp_path / "c.csv"))
    assert code == 2
    assert ".xlsx" in err
    assert list(tmp_path.iterdir()) == []
    code, _, _ = run(capsys, monkeypatch, 100, *base, "--output", str(tmp_path / "c.xlsx"))
    assert code == 0
    sheet = openpyxl.load_workbook(tmp_path / "c.xlsx")["cost"]
    assert sheet.max_row - 1 == cost_breakdown(read_lake(report_lake)).height


def test_csv_stays_plain_utf8_and_the_readme_says_how_to_open_it_in_excel(
    report_lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["report", "delivery", "--lake", str(report_lake), "--format", "csv"]
    code, out, _ = run(capsys, monkeypatch, 100, *argv)
    assert code == 0
    assert out.startswith("campaign,messages,")  # no byte-order mark for tools
    assert "Nhắc lịch hẹn" in out or "đ" in out
    assert "65001: Unicode (UTF-8)" in README
    assert "--format xlsx" in README


def test_a_long_table_still_shows_its_total_row(
    report_lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["report", "cost", "--lake", str(report_lake), "--by", "campaign,carrier", "--totals"]
    code, out, _ = run(capsys, monkeypatch, 200, *argv)
    assert code == 0
    table = cost_breakdown(read_lake(report_lake), by=["campaign", "carrier"], totals=True)
    assert table.height > 41
    lines = out.splitlines()
    assert lines[40].startswith("(total)")
    assert f"{round(table['cost_vnd'][-1]):,}" in lines[40]
    assert f"{table.height - 40:,} more rows: --format csv for all" in out
