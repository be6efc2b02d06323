"""How reports look to people: terminal tables, CSV/JSON/Excel exports and the HTML page.

The CLI, the demo, the notebooks and the bundle render through this module; it
computes nothing. One set of rules, read from the column's name and dtype,
formats every surface alike:

- shares (``delivery_rate``, ``pending_share``, ``share`` ...) as percentages,
  ``94.4 %``; a ``X_low``/``X_high`` pair becomes one interval column beside X;
- ``*_vnd`` columns as whole VND with thousands separators, ``11,299,960``;
- counts with thousands separators; timestamps to the minute;
- text left, numbers right.

The HTML page is one self-contained file: plots inline, a few lines of inline
script to sort tables, no network. Excel workbooks keep every column typed
(numbers stay numbers) and carry the same formats as number formats.
"""

from __future__ import annotations

import base64
import html
import io
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final, Literal, TextIO

import polars as pl

from esms_analytics.errors import ConfigError
from esms_analytics.files import make_folders, replace_file

TableFormat = Literal["table", "csv", "json"]
ColumnKind = Literal["text", "day", "count", "share", "interval", "vnd", "number", "flag", "time"]

#: Columns holding shares in [0, 1], shown to people as percentages.
_SHARE_PREFIXES: Final = (
    "delivery_rate",
    "pending_share",
    "share",
    "volume_share",
    "campaign_delivery_rate",
)
#: The order columns are shown in (and dropped from the end of when a terminal is narrow):
#: what the row is, how many, how well, what it cost, then when.
_KIND_ORDER: Final[dict[ColumnKind, int]] = {
    "text": 0,
    "day": 0,
    "count": 1,
    "share": 2,
    "interval": 2,
    "vnd": 3,
    "number": 4,
    "flag": 5,
    "time": 6,
}
_NUMERIC_KINDS: Final = frozenset(("count", "share", "interval", "vnd", "number"))
#: What a terminal table says when it leaves rows or columns out.
MORE_HINT: Final = "--format csv for all"
_GAP: Final = "  "
#: The label of a totals row, as the reports write it (render formats any frame, imports no report).
TOTAL_LABEL: Final = "(total)"


def column_kind(name: str, dtype: pl.DataType) -> ColumnKind:
    """Say how a column is shown: its kind, read from its name and dtype.

    >>> column_kind("cost_failed_vnd", pl.Float64()), column_kind("delivery_rate", pl.Float64())
    ('vnd', 'share')
    """
    if dtype == pl.Boolean:
        return "flag"
    if isinstance(dtype, pl.Datetime):
        return "time"
    if dtype == pl.Date:
        return "day"
    if name.endswith("_vnd"):
        return "vnd"
    if name.startswith(_SHARE_PREFIXES) and dtype.is_float():
        return "share"
    if dtype.is_integer():
        return "count"
    if dtype.is_numeric():
        return "number"
    return "text"


def percent(value: float | None, *, digits: int = 1) -> str:
    """Format a share in [0, 1] as a percentage.

    >>> percent(0.9444), percent(None)
    ('94.4 %', '—')
    """
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def interval(low: float | None, high: float | None) -> str:
    """Format an interval of shares as one range of percentages.

    >>> interval(0.908, 0.9131)
    '90.8–91.3 %'
    """
    if low is None or high is None:
        return "—"
    return f"{low * 100:.1f}–{high * 100:.1f} %"


def vnd(value: float | None) -> str:
    """Format an amount of VND as a whole number with thousands separators.

    >>> vnd(11299960.0), vnd(0.0), vnd(749.6)
    ('11,299,960', '0', '750')
    """
    return "—" if value is None else f"{round(value):,}"


def format_value(kind: ColumnKind, value: object) -> str:
    """Format one value of a column of ``kind`` the way every surface shows it."""
    if value is None:
        return "—"
    if kind == "share":
        return percent(float(value))  # type: ignore[arg-type]
    if kind == "vnd":
        return vnd(float(value))  # type: ignore[arg-type]
    if kind == "flag":
        return "yes" if value else "no"
    if kind == "time" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "day" and isinstance(value, date):
        return value.isoformat()
    if kind == "count" and isinstance(value, int):
        return f"{value:,}"
    if kind == "number" and isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


@dataclass(frozen=True)
class Column:
    """One column as people see it: header, kind, the shown text and a key to sort by."""

    name: str
    header: str
    kind: ColumnKind
    cells: list[str]
    keys: list[float | str | None]

    @property
    def numeric(self) -> bool:
        """Whether the column holds numbers (aligned right)."""
        return self.kind in _NUMERIC_KINDS


def header_of(name: str) -> str:
    """Say a column's name the way a reader does: ``cost_per_delivered_vnd`` -> ``cost per delivered ₫``."""
    return name.removesuffix("_vnd").replace("_", " ") + (" ₫" if name.endswith("_vnd") else "")


def display_columns(frame: pl.DataFrame) -> list[Column]:
    """Turn ``frame`` into the columns people see, in the order they read them.

    Key columns (text, days) come first, then counts, rates (each with its 95%
    interval merged into one column), VND, flags and, last, timestamps.
    """
    names = frame.columns
    merged = {f"{name}_low" for name in names if {f"{name}_low", f"{name}_high"} <= set(names)}
    merged |= {low.replace("_low", "_high") for low in merged}
    columns: list[Column] = []
    for name in names:
        if name in merged:
            continue
        series = frame[name]
        kind = column_kind(name, series.dtype)
        values = series.to_list()
        keys = [_sort_key(value) for value in values]
        columns.append(
            Column(name, header_of(name), kind, [format_value(kind, v) for v in values], keys)
        )
        if f"{name}_low" in merged:
            columns.append(_interval_column(frame, name))
    return sorted(columns, key=lambda column: _KIND_ORDER[column.kind])


def _interval_column(frame: pl.DataFrame, name: str) -> Column:
    lows, highs = frame[f"{name}_low"].to_list(), frame[f"{name}_high"].to_list()
    cells = [interval(low, high) for low, high in zip(lows, highs, strict=True)]
    return Column(f"{name}_interval", "95 % interval", "interval", cells, lows)


def _sort_key(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def terminal_width() -> int:
    """Return the terminal's width in characters (``COLUMNS`` wins; 100 when not a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def format_table(table: pl.DataFrame, *, rows: int = 40, width: int | None = None) -> str:
    """Format a table for people, as wide as the terminal at most.

    When the terminal is narrow, columns are kept by rank (the key, the first
    count, rate and VND, then the rest, timestamps last) and the others are
    named; rows past ``rows`` are counted, a ``(total)`` row is always shown.
    Both notes say how to get everything.

    >>> print(format_table(pl.DataFrame({"campaign": ["Tết"], "messages": [1234],
    ...                                  "delivery_rate": [0.9444], "cost_vnd": [980400.0]})))
    campaign  messages  delivery rate  cost ₫
    Tết          1,234         94.4 %  980,400
    """
    width = terminal_width() if width is None else width
    picked = list(range(min(rows, table.height)))
    if table.height > rows and table.width and table[-1, 0] == TOTAL_LABEL:
        picked[-1] = table.height - 1  # the total row is the one a reader looks for
    columns = [_head(column, picked) for column in display_columns(table)]
    if columns and sum(_width(column) + len(_GAP) for column in columns) > width:
        # Long names give way first, so that counts and rates fit beside them.
        columns[0] = _clipped(columns[0], max(16, width // 3))
    kept: set[int] = set()
    used = 0
    for index in sorted(range(len(columns)), key=lambda i: _keep_rank(columns, i)):
        needed = _width(columns[index]) + (len(_GAP) if kept else 0)
        if kept and used + needed > width:
            continue
        kept.add(index)
        used += needed
    shown = [column for index, column in enumerate(columns) if index in kept]
    lines = [_GAP.join(_aligned(column, column.header) for column in shown).rstrip()]
    for index in range(len(picked)):
        lines.append(_GAP.join(_aligned(column, column.cells[index]) for column in shown).rstrip())
    notes = []
    if table.height > len(picked):
        notes.append(f"{table.height - len(picked):,} more rows: {MORE_HINT}")
    left_out = [column.header for index, column in enumerate(columns) if index not in kept]
    if left_out:
        notes.append(f"not shown for width: {', '.join(left_out)} ({MORE_HINT})")
    # The hint stays on one line: no-break spaces while wrapping, plain ones after.
    glued = MORE_HINT.replace(" ", "\u00a0")
    wrapped = [
        part.replace("\u00a0", " ")
        for note in notes
        for part in textwrap.wrap(note.replace(MORE_HINT, glued), width)
    ]
    return "\n".join(lines + wrapped)


def _keep_rank(columns: list[Column], index: int) -> tuple[int, int]:
    """Rank a column for a narrow terminal: the key, then the first count, rate and VND."""
    column = columns[index]
    if index == 0:
        return (0, index)
    first_of_kind = all(other.kind != column.kind for other in columns[:index])
    leading = {"count": 1, "share": 2, "vnd": 3}
    if first_of_kind and column.kind in leading:
        return (leading[column.kind], index)
    return (4 + _KIND_ORDER[column.kind], index)


def _head(column: Column, picked: Sequence[int]) -> Column:
    return Column(
        column.name,
        column.header,
        column.kind,
        [column.cells[index] for index in picked],
        [column.keys[index] for index in picked],
    )


def _clipped(column: Column, size: int) -> Column:
    cells = [cell if len(cell) <= size else cell[: size - 1] + "…" for cell in column.cells]
    return Column(column.name, column.header, column.kind, cells, column.keys)


def _width(column: Column) -> int:
    return max([len(column.header), *(len(cell) for cell in column.cells)])


def _aligned(column: Column, text: str) -> str:
    size = _width(column)
    return text.rjust(size) if column.numeric else text.ljust(size)


@dataclass(frozen=True)
class Pretty:
    """A report shown to people in a notebook, formatted as the page and the terminal do."""

    table: pl.DataFrame
    rows: int = 40

    def _repr_html_(self) -> str:
        more = self.table.height - self.rows
        note = f"<p>{more:,} more rows: <code>.table</code> has them all</p>" if more > 0 else ""
        return table_html(self.table.head(self.rows), inline=True) + note

    def __repr__(self) -> str:
        return format_table(self.table, rows=self.rows, width=120)


def pretty(table: pl.DataFrame, *, rows: int = 40) -> Pretty:
    """Show ``table`` in a notebook with rates as percentages and VND as whole numbers.

    The frame itself is untouched (``.table``); only its display changes.

    >>> pretty(pl.DataFrame({"campaign": ["Tết"], "cost_vnd": [32270490.0]}))
    campaign  cost ₫
    Tết       32,270,490
    """
    return Pretty(table, rows)


def write_table(table: pl.DataFrame, form: TableFormat, stream: TextIO) -> None:
    """Write ``table`` to ``stream``: CSV and JSON carry exactly the report's columns."""
    if form == "csv":
        stream.write(table.write_csv())
    elif form == "json":
        stream.write(table.write_json() + "\n")
    else:
        stream.write(format_table(table) + "\n")


# -- Excel --------------------------------------------------------------------------------

#: Excel number formats by column kind: the same reading as the terminal and the page.
EXCEL_FORMATS: Final[dict[ColumnKind, str]] = {
    "share": "0.0%",
    "vnd": "#,##0",
    "count": "#,##0",
    "number": "#,##0.00",
    "time": "yyyy-mm-dd hh:mm",
    "day": "yyyy-mm-dd",
}


def _excel_ready(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, str]]:
    """Make the frame's columns ones Excel types, and pick each column's number format.

    Excel has no time zones: timestamps are written as Vietnam wall-clock time,
    which is what the lake's zone is. Enum labels become text.
    """
    formats: dict[str, str] = {}
    columns = []
    for name, dtype in frame.schema.items():
        kind = column_kind(name, dtype)
        if kind in EXCEL_FORMATS:
            formats[name] = EXCEL_FORMATS[kind]
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            columns.append(pl.col(name).dt.replace_time_zone(None))
        elif isinstance(dtype, pl.Enum | pl.Categorical):
            columns.append(pl.col(name).cast(pl.String))
        else:
            columns.append(pl.col(name))
    return frame.select(columns), formats


def workbook_bytes(sheets: dict[str, pl.DataFrame]) -> bytes:
    """Return an .xlsx workbook with one sheet per frame, columns typed and formatted.

    Written with XlsxWriter, through Polars' ``write_excel`` (which is built on it).
    """
    import xlsxwriter

    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True}) as workbook:
        for name, frame in sheets.items():
            ready, formats = _excel_ready(frame)
            ready.write_excel(
                workbook,
                worksheet=name[:31],  # Excel's limit on sheet names
                column_formats=formats,  # type: ignore[arg-type]
                autofit=True,
                freeze_panes=(1, 1),
                table_style="Table Style Light 9",
            )
    return buffer.getvalue()


def write_workbook(sheets: dict[str, pl.DataFrame], path: Path) -> None:
    """Write the workbook at exactly ``path`` (``.xlsx``), nothing else touched."""
    check_output(path, (".xlsx",))
    write_bytes_exactly(path, workbook_bytes(sheets))


# -- HTML ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A heading, a sentence on how to read it, a table and an optional PNG."""

    title: str
    note: str
    table: pl.DataFrame
    png: bytes | None = None
    anchor: str = ""


@dataclass(frozen=True)
class Headline:
    """One headline figure: what it is, its value, and how it moved."""

    label: str
    value: str
    detail: str = ""
    change: str = ""


@dataclass(frozen=True)
class Page:
    """Everything on the HTML page, already computed and worded."""

    title: str
    facts: list[tuple[str, str]]
    headlines: list[Headline]
    sections: list[Section]
    footer: str = ""


_STYLE: Final = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 0 auto; padding: 1.5em 2em;
       max-width: 1180px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 .3em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #555; max-width: 60em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0 0 1em; }
dl.facts dt { color: #555; } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.headlines { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: .8em; }
.headline { border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; }
.headline .label { color: #555; font-size: .85em; }
.headline .value { font-size: 1.5em; font-weight: bold; font-variant-numeric: tabular-nums; }
.headline .detail, .headline .change { font-size: .8em; color: #555; }
.table-box { overflow-x: auto; max-width: 100%; margin: 1em 0; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: .85em; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 3px 8px; white-space: nowrap; }
th { background: #f5f5f5; cursor: pointer; position: sticky; top: 0; user-select: none; }
th[aria-sort="ascending"]::after { content: " ▲"; } th[aria-sort="descending"]::after { content: " ▼"; }
.num { text-align: right; font-variant-numeric: tabular-nums; } .text { text-align: left; }
td.key { position: sticky; left: 0; background: #fff; max-width: 22em; overflow: hidden;
         text-overflow: ellipsis; }
tfoot td { font-weight: bold; border-top: 2px solid #ccc; }
img { max-width: 100%; height: auto; display: block; margin: 1em 0; }
footer { margin-top: 3em; color: #777; font-size: .8em; }
@media (max-width: 600px) {
  body { padding: .8em; } h1 { font-size: 1.3em; } h2 { font-size: 1.15em; }
  .headlines { grid-template-columns: 1fr 1fr; gap: .5em; }
  .headline .value { font-size: 1.2em; }
  dl.facts { grid-template-columns: 1fr; gap: 0; } dl.facts dd { margin-bottom: .3em; }
  table { font-size: .78em; } td.key { max-width: 11em; }
}
@media print {
  @page { size: A4; margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 9pt; }
  .table-box { overflow: visible; border: 0; }
  table { font-size: 7.5pt; } th, td { white-space: normal; padding: 2px 4px; }
  th { position: static; } td.key { position: static; max-width: none; }
  h2 { break-after: avoid; } tr, img, .headline { break-inside: avoid; }
}
"""

#: Sort a table by a click on its header; a second click reverses. Totals (tfoot) stay put.
_SCRIPT: Final = """
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], rows = Array.from(body.rows), col = th.cellIndex;
  const up = th.getAttribute("aria-sort") !== "ascending";
  th.closest("tr").querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", up ? "ascending" : "descending");
  const key = r => { const v = r.cells[col].dataset.v; return v === undefined ? "" : v; };
  const num = th.classList.contains("num");
  rows.sort((a, b) => { const x = key(a), y = key(b); if (x === y) return 0; if (x === "") return 1;
    if (y === "") return -1; const c = num ? x - y : x.localeCompare(y); return up ? c : -c; });
  rows.forEach(r => body.appendChild(r));
}));
"""


def table_html(
    frame: pl.DataFrame, *, total_label: str | None = TOTAL_LABEL, inline: bool = False
) -> str:
    """Render every row of ``frame`` as a sortable HTML table in its own scrolling box.

    A row whose first value is ``total_label`` goes to the table's foot, where sorting
    leaves it. ``inline`` puts the alignment on each cell, for notebooks, which do not
    carry the page's style sheet.
    """
    columns = display_columns(frame)
    head = "".join(
        f'<th scope="col" class="{"num" if c.numeric else "text"}"{_align(c, inline)}>'
        f"{html.escape(c.header)}</th>"
        for c in columns
    )
    first = frame.columns[0] if frame.columns else None
    body: list[str] = []
    foot: list[str] = []
    for index in range(frame.height):
        row = "".join(
            _td(column, index, key=position == 0, inline=inline)
            for position, column in enumerate(columns)
        )
        is_total = first is not None and frame[first][index] == total_label
        (foot if is_total else body).append(f"<tr>{row}</tr>")
    tfoot = f"<tfoot>{''.join(foot)}</tfoot>" if foot else ""
    return (
        f'<div class="table-box"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody>{tfoot}</table></div>"
    )


def _align(column: Column, inline: bool) -> str:
    if not inline:
        return ""
    return f' style="text-align: {"right" if column.numeric else "left"}; white-space: nowrap"'


def _td(column: Column, index: int, *, key: bool, inline: bool = False) -> str:
    classes = ["num" if column.numeric else "text", *(["key"] if key else [])]
    value = column.keys[index]
    data = "" if value is None else f' data-v="{html.escape(str(value))}"'
    text = html.escape(column.cells[index])
    title = f' title="{text}"' if key else ""
    style = _align(column, inline)
    return f'<td class="{" ".join(classes)}"{data}{title}{style}>{text}</td>'


def html_page(page: Page) -> str:
    """Render the whole HTML page: one file, no network."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(page.title)}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{html.escape(page.title)}</h1>",
        _facts_html(page.facts),
        "</header>",
    ]
    if page.headlines:
        parts.append('<section class="headlines" aria-label="headline figures">')
        parts.extend(_headline_html(headline) for headline in page.headlines)
        parts.append("</section>")
    for section in page.sections:
        parts.append(_section_html(section))
    if page.footer:
        parts.append(f"<footer>{html.escape(page.footer)}</footer>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _text(text: str) -> str:
    # A unit never starts a line on its own: "2,606,830 ₫" and "89.5 %" stay whole.
    return html.escape(text).replace(" ₫", "\u00a0₫").replace(" %", "\u00a0%")


def _facts_html(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in facts)
    return f'<dl class="facts">{rows}</dl>'


def _headline_html(headline: Headline) -> str:
    parts = [
        f'<div class="headline"><div class="label">{_text(headline.label)}</div>',
        f'<div class="value">{_text(headline.value)}</div>',
    ]
    if headline.detail:
        parts.append(f'<div class="detail">{_text(headline.detail)}</div>')
    if headline.change:
        parts.append(f'<div class="change">{_text(headline.change)}</div>')
    return "".join(parts) + "</div>"


def _section_html(section: Section) -> str:
    anchor = f' id="{html.escape(section.anchor)}"' if section.anchor else ""
    parts = [
        f"<section{anchor}><h2>{html.escape(section.title)}</h2>",
        f"<p class='note'>{html.escape(section.note)}</p>",
    ]
    if section.png is not None:
        encoded = base64.b64encode(section.png).decode("ascii")
        parts.append(
            f'<img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
        )
    parts.append(table_html(section.table))
    parts.append("</section>")
    return "\n".join(parts)


def check_output(path: Path, suffixes: Sequence[str], *, option: str = "") -> Path:
    """Check, before any work, that ``path`` can be written as a file; return it.

    ``suffixes`` are the endings the writer knows; ``option`` (``--output``...)
    names where the path came from in the messages. Missing parent folders are
    created (0750), then a temporary file is written in the folder and removed: only
    writing shows that writing works (permissions, read-only mounts).

    Raises
    ------
    ConfigError
        One line naming the path, what is wrong with it and what to do: a wrong
        ending, a folder at the path, a file where a folder goes, a folder that
        cannot be written in.
    """
    import tempfile

    name = f"{option} {path}".strip()
    endings = " or ".join(filter(None, (", ".join(suffixes[:-1]), suffixes[-1])))
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{name} must end in {endings}; give the name of the file to write")
    if path.is_dir():
        raise ConfigError(f"{name} is a folder; give the name of a file in it ending in {endings}")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{name}: {parent} is a file, not a folder; choose another place")
    try:
        make_folders(path.parent)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{name}: cannot write in {path.parent} ({exc.strerror}); choose another place"
        ) from exc
    return path


def write_bytes_exactly(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` and nowhere else: a temporary file beside it, then a rename.

    A reader never sees half a file, and no other file in the folder is touched.
    The file is 0640 whatever the umask (:mod:`esms_analytics.files`): a report
    names campaigns and carries what the lake holds, for its owner and group.
    """
    try:
        replace_file(path, data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}; choose another path") from exc


def write_text_exactly(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) at ``path`` and nowhere else; see :func:`write_bytes_exactly`."""
    write_bytes_exactly(path, text.encode("utf-8"))
