"""Reports by template, unique recipients, and no raw phone or content in what is forwarded."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import polars as pl
import pytest

from esms_analytics import read_lake, reports
from esms_analytics.bundle import write_bundle
from esms_analytics.privacy.text import template_expr
from esms_analytics.simulator.history import CONTENTS

KEY = b"test-key-not-a-secret"


def _token(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()


def test_delivery_by_template_derives_templates_on_a_lake_without_the_column(
    report_lake: Path,
) -> None:
    frame = read_lake(report_lake)
    assert "template" not in frame.collect_schema()
    by_template = reports.delivery(report_lake, by="template")
    families = sum(len(texts) for texts in CONTENTS.values())
    assert 1 < by_template.height <= families
    assert by_template["messages"].sum() == frame.select(pl.len()).collect().item()
    # The column, when the lake has it, is used as it is.
    marked = frame.with_columns(template=pl.lit("T"))
    assert reports.delivery(marked, by="template")["template"].to_list() == ["T"]
    hotspots = reports.failure_hotspots(report_lake, by="template", min_messages=1, top=None)
    assert "template_delivery_rate" in hotspots.columns
    assert set(hotspots["template"]) <= set(by_template["template"])
    assert not hotspots["template"].str.contains(r"\d{4}").any()


def test_by_template_on_another_engine_needs_the_column(report_lake: Path) -> None:
    pandas_frame = read_lake(report_lake).head(200).collect().to_pandas()
    with pytest.raises(reports.ConfigError, match="template"):
        reports.delivery(pandas_frame, by="template")
    with_column = (
        read_lake(report_lake)
        .head(200)
        .with_columns(template_expr(pl.col("content")).alias("template"))
    )
    expected = reports.delivery(with_column, by="template")
    got = pl.from_pandas(reports.delivery(with_column.collect().to_pandas(), by="template"))
    assert sorted(got["template"].to_list()) == sorted(expected["template"].to_list())


def test_unique_recipients_from_tokens_equal_the_raw_count(report_lake: Path) -> None:
    raw = read_lake(report_lake).collect()
    counted = reports.unique_recipients(raw)
    distinct = raw.select(pl.coalesce("phone_e164", "phone").n_unique()).item()
    assert counted.rows() == [(distinct, raw.height)]
    pseudonymised = raw.with_columns(
        phone_token=pl.coalesce("phone_e164", "phone").map_elements(_token, pl.String)
    ).drop("phone", "phone_e164")
    assert reports.unique_recipients(pseudonymised).rows() == counted.rows()
    by_carrier = reports.unique_recipients(pseudonymised, by=["date", "carrier"])
    assert by_carrier.sort(["date", "carrier"]).equals(
        reports.unique_recipients(raw, by=["date", "carrier"]).sort(["date", "carrier"])
    )


def test_no_phone_or_content_in_the_html_csv_and_json_of_a_lake(
    report_lake: Path, tmp_path: Path
) -> None:
    frame = read_lake(report_lake)
    write_bundle(frame, tmp_path, source=str(report_lake), title="t")
    raw = frame.select("phone", "phone_e164", "content").collect()
    tables = {
        "template": reports.delivery(frame, by="template"),
        "hotspots": reports.failure_hotspots(frame, by="template", min_messages=1),
    }
    for name, table in tables.items():
        table.write_csv(tmp_path / f"{name}.csv")
        table.write_json(tmp_path / f"{name}.json")
    files = [p for p in tmp_path.rglob("*") if p.suffix in (".html", ".csv", ".json")]
    assert any(p.suffix == ".html" for p in files)
    data = b"".join(p.read_bytes() for p in files)
    phones = {*raw["phone"].to_list(), *raw["phone_e164"].drop_nulls().to_list()}
    assert [phone for phone in phones if phone.encode() in data] == []
    # A text with a code never shows whole (the numbers of the page may equal a code).
    coded = raw.filter(pl.col("content").str.contains(r"\d{6}"))["content"].unique()
    assert coded.len() > 0
    assert [text for text in coded.to_list() if text.encode() in data] == []
