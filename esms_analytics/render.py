"""How reports look to people: terminal tables, CSV/JSON exports and the HTML page.

The CLI, the demo and the bundle render through this module; it computes
nothing. The HTML page is one self-contained file: every table and plot
inline, no external files.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TextIO

import polars as pl

TableFormat = Literal["table", "csv", "json"]
#: Columns holding shares in [0, 1], shown to people as percentages.
_SHARE_PREFIXES: Final = (
    "delivery_rate",
    "pending_share",
    "share",
    "volume_share",
    "campaign_delivery_rate",
)


def format_table(table: pl.DataFrame, *, rows: int = 40) -> str:
    """Format a table for people: every column, rates as percentages, long names kept.

    >>> print(format_table(pl.DataFrame({"campaign": ["A"], "delivery_rate": [0.9444]})))
    ┌──────────┬─────────────────┐
    │ campaign ┆ delivery_rate % │
    ╞══════════╪═════════════════╡
    │ A        ┆ 94.4            │
    └──────────┴─────────────────┘
    """
    shares = [name for name in table.columns if name.startswith(_SHARE_PREFIXES)]
    shown = table.with_columns(
        pl.col(name).mul(100).round(1).alias(f"{name} %") for name in shares
    ).drop(shares)
    with pl.Config(
        tbl_rows=rows,
        tbl_cols=-1,
        tbl_width_chars=250,
        fmt_str_lengths=40,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        thousands_separator=",",
        float_precision=1,
    ):
        return str(shown)


def write_table(table: pl.DataFrame, form: TableFormat, stream: TextIO) -> None:
    """Write ``table`` to ``stream``: CSV and JSON carry exactly the report's columns."""
    if form == "csv":
        stream.write(table.write_csv())
    elif form == "json":
        stream.write(table.write_json() + "\n")
    else:
        stream.write(format_table(table) + "\n")


@dataclass(frozen=True)
class Section:
    """A heading, a sentence on how to read it, a table and an optional PNG."""

    title: str
    note: str
    table: pl.DataFrame
    png: bytes | None = None


_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #555; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: right; }
th { background: #f5f5f5; } td.text { text-align: left; }
img { max-width: 100%; }
"""


def _cell(value: object) -> tuple[str, bool]:
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), True
    if isinstance(value, float):
        return (f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"), False
    if isinstance(value, int):
        return f"{value:,}", False
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M"), True
    return str(value), True


def table_html(frame: pl.DataFrame, *, max_rows: int = 30) -> str:
    """Render an HTML table of the first ``max_rows`` rows, values escaped."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in frame.columns)
    body = []
    for row in frame.head(max_rows).iter_rows():
        cells = []
        for value in row:
            text, is_text = _cell(value)
            css = ' class="text"' if is_text else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = (
        f"<p class='note'>{frame.height - max_rows:,} more rows not shown.</p>"
        if frame.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def html_page(title: str, intro: str, sections: list[Section]) -> str:
    """Render the whole HTML page, self-contained."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(intro)}</p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        if section.png is not None:
            encoded = base64.b64encode(section.png).decode("ascii")
            parts.append(
                f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
            )
        parts.append(table_html(section.table))
    parts.append("</body></html>")
    return "\n".join(parts)
