"""The HTML report as a manager gets it: what it covers, the headline, every row, one file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from esms_analytics.cli import main
from esms_analytics.lake import read_lake
from esms_analytics.render import table_html
from esms_analytics.reports import (
    carrier_performance,
    cost_breakdown,
    delivery_by_campaign,
    failure_hotspots,
)

from .conftest import REPORT_END as END
from .conftest import REPORT_START as START

BEFORE_START, BEFORE_END = START - timedelta(days=7), START - timedelta(days=1)


@pytest.fixture
def lake(report_lake: Path) -> Path:
    return report_lake


@dataclass
class Table:
    section: str
    headers: list[str] = field(default_factory=list)
    header_classes: list[str] = field(default_factory=list)
    rows: list[list[tuple[str, str]]] = field(default_factory=list)


class PageReader(HTMLParser):
    """Collects each table's headers and cells (text, class), the section it sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[Table] = []
        self.section = ""
        self.cell: list[str] | None = None
        self.cell_class = ""
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section" and attributes.get("id"):
            self.section = attributes["id"] or ""
        elif tag == "table":
            self.tables.append(Table(self.section))
        elif tag == "tr" and self.tables:
            self.tables[-1].rows.append([])
        elif tag in ("td", "th"):
            self.cell, self.cell_class = [], attributes.get("class") or ""
        elif tag == "img":
            self.images.append(attributes.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            text = "".join(self.cell)
            table = self.tables[-1]
            if tag == "th":
                table.rows.pop() if table.rows and not table.rows[-1] else None
                table.headers.append(text)
                table.header_classes.append(self.cell_class)
            else:
                table.rows[-1].append((text, self.cell_class))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        self.text.append(data)


def read_page(path: Path) -> PageReader:
    reader = PageReader()
    reader.feed(path.read_text("utf-8"))
    for table in reader.tables:
        table.rows = [row for row in table.rows if row]
    return reader


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def html_report(
    capsys: pytest.CaptureFixture[str], lake: Path, output: Path, *extra: str
) -> tuple[int, str, str]:
    return run(
        capsys,
        "report",
        "html",
        "--lake",
        str(lake),
        "--from",
        str(START),
        "--to",
        str(END),
        "--output",
        str(output),
        *extra,
    )


def test_the_page_opens_with_what_it_covers_and_the_headline_against_the_week_before(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "week.html"
    code, out, _ = html_report(capsys, lake, page)
    assert code == 0
    assert str(page) in out
    text = " ".join(" ".join(read_page(page).text).split())
    assert f"Period {START} – {END} (7 days)" in text
    assert f"Compared with {BEFORE_START} – {BEFORE_END} (7 days)" in text
    assert f"Lake {lake}" in text
    assert "customer_care" in text
    now = cost_breakdown(read_lake(lake, start=START, end=END), by="sms_type")
    before = cost_breakdown(read_lake(lake, start=BEFORE_START, end=BEFORE_END), by="sms_type")
    messages, spend = now["messages"].sum(), now["cost_vnd"].sum()
    failed_spend = now["cost_failed_vnd"].sum()
    assert f"Messages {messages:,}" in text
    assert f"Spend {round(spend):,} ₫" in text
    assert f"Spend on failed messages {round(failed_spend):,} ₫" in text
    change = (spend - before["cost_vnd"].sum()) / before["cost_vnd"].sum() * 100
    assert f"{change:+.1f} % vs {round(before['cost_vnd'].sum()):,} ₫" in text
    delivered = now["delivered"].sum()
    assert f"Cost per delivered message {round(spend / delivered):,} ₫" in text
    rate = re.search(r"Delivery rate (\d+\.\d) % 95 % interval (\d+\.\d)–(\d+\.\d) %", text)
    assert rate is not None, text[:2000]
    low, value, high = float(rate[2]), float(rate[1]), float(rate[3])
    assert low < value < high
    # Hotspots come right after the headline, then every report.
    sections = [table.section for table in read_page(page).tables]
    assert sections == ["hotspots", "delivery", "cost", "trend", "carriers"]


def test_every_table_holds_every_row_formatted_for_people(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "week.html"
    assert html_report(capsys, lake, page)[0] == 0
    tables = {table.section: table for table in read_page(page).tables}
    frame = read_lake(lake)
    window = {"start": START, "end": END}
    expected = {
        "hotspots": failure_hotspots(frame, **window).height,
        "delivery": delivery_by_campaign(frame, **window).height,
        "cost": cost_breakdown(frame, by="campaign", totals=True, **window).height,
        "carriers": carrier_performance(frame, **window).height,
    }
    assert expected["carriers"] > 30  # more than the old page's cut-off
    for name, rows in expected.items():
        assert len(tables[name].rows) == rows, name
    delivery = tables["delivery"]
    rate = delivery.headers.index("delivery rate")
    assert all(re.fullmatch(r"\d+\.\d %", row[rate][0]) for row in delivery.rows)
    assert "num" in delivery.header_classes[rate]
    assert all("text" in row[0][1] and "num" in row[1][1] for row in delivery.rows)
    cost = tables["cost"]
    for column in ("cost ₫", "cost failed ₫", "cost per delivered ₫"):
        index = cost.headers.index(column)
        assert all(re.fullmatch(r"\d{1,3}(,\d{3})*|—", row[index][0]) for row in cost.rows)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--campaign", "OTP đăng nhập"), ("--sms-type", "2")],
)
def test_every_filter_applies_to_every_part_of_the_page(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    page = tmp_path / "filtered.html"
    assert html_report(capsys, lake, page, option, value)[0] == 0
    tables = {table.section: table for table in read_page(page).tables}
    if option == "--campaign":
        expected = delivery_by_campaign(read_lake(lake), start=START, end=END, campaigns=[value])
        assert [row[0][0] for row in tables["delivery"].rows] == [value]
        assert {row[0][0] for row in tables["hotspots"].rows} <= {value}
    else:
        expected = delivery_by_campaign(read_lake(lake, sms_types=[2]), start=START, end=END)
        assert {row[1][0] for row in tables["carriers"].rows} == {"customer_care"}
    text = " ".join(" ".join(read_page(page).text).split())
    assert f"Messages {expected['messages'].sum():,}" in text


def test_the_page_is_one_file_at_exactly_the_path_asked_for(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    kept = {name: f"{name} from last month".encode() for name in ("report.html", "delivery.png")}
    for name, data in kept.items():
        (folder / name).write_bytes(data)
    page = folder / "november.html"
    assert html_report(capsys, lake, page)[0] == 0
    assert sorted(path.name for path in folder.iterdir()) == sorted([*kept, "november.html"])
    for name, data in kept.items():
        assert (folder / name).read_bytes() == data
    source = page.read_text("utf-8")
    images = read_page(page).images
    assert len(images) == 5
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", source)
    assert "<link" not in source
    assert "<script>" in source
    assert "<script src" not in source


@pytest.mark.parametrize("name", ["report.txt", "report.HTML.bak", "folder"])
def test_an_output_that_is_not_an_html_file_is_refused_before_any_work(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    (tmp_path / "folder").mkdir()
    code, out, err = html_report(capsys, lake, tmp_path / name)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert ".html" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder"]


def test_an_empty_selection_is_an_error_and_writes_nothing(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "empty.html"
    code, _, err = html_report(capsys, lake, page, "--campaign", "no such campaign")
    assert code == 2
    assert "no messages" in err
    assert "no such campaign" in err
    assert not page.exists()


def test_tables_put_totals_in_the_foot_and_keep_text_left_numbers_right() -> None:
    frame = pl.DataFrame(
        {
            "campaign": ["Tết", "(total)"],
            "messages": [1234, 1234],
            "cost_vnd": [980400.0, 980400.0],
            "share": [1.0, 1.0],
        }
    )
    markup = table_html(frame)
    body, foot = markup.split("<tfoot>")
    assert "Tết" in body
    assert "(total)" in foot
    assert '<td class="num" data-v="980400.0">980,400</td>' in body
    assert '<td class="num" data-v="1.0">100.0 %</td>' in body
    assert '<td class="text key" data-v="Tết" title="Tết">Tết</td>' in body
