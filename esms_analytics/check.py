"""What a lake holds, and what is wrong with it: ``lake info`` and ``lake check``.

- :func:`lake_info` reads the manifest and each data file's *footer*: rows,
  columns and partition facts against the manifest, missing and unsettled
  windows, foreign objects. Cheap: a request or two per file.
- :func:`check_lake` also reads *every page* of every data file: damage that
  leaves a valid footer (garbage pages) shows only there. It counts the rows
  read against the manifest and warns of negative ``sell_price`` (refunds may
  exist) while non-finite prices are a problem.

Neither writes anything: a reader's credentials suffice. Both say whether the
lake is healthy, and the CLI turns that into exit code 5, for monitoring.
A plain sync never re-reads settled files (that is what keeps it cheap), so
run ``lake check`` from time to time, and ``sync --refresh`` of a day it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from esms_analytics.codes import SMS_TYPES, TIME_ZONE
from esms_analytics.errors import CorruptPartitionError
from esms_analytics.lake import (
    PartitionFile,
    lake_inventory,
    map_files,
    open_lake,
    read_footer,
)
from esms_analytics.manifest import Manifest, WindowEntry, window_key
from esms_analytics.store import LakeLocation, LakeStore
from esms_analytics.tables import TableFormat, open_table

# -- information --------------------------------------------------------------

#: What ``lake info`` can say of a window, from its manifest entry and its file's footer.
WINDOW_STATUSES: Final = (
    "ok",  # the file's footer agrees with the manifest
    "missing_file",  # the manifest counts rows, no data file holds them
    "corrupt",  # the footer cannot be read
    "wrong_schema",  # the file's columns are not the lake's
    "wrong_partition",  # the file's metadata names another type or day
    "rows_differ",  # the file holds another number of rows than recorded
    "unrecorded",  # a data file the manifest does not list
)


@dataclass(frozen=True)
class LakeInfo:
    """What a lake holds: one row per known window, what is missing, and what is wrong.

    ``windows`` columns: ``sms_type``, ``date``, ``rows``, ``file_bytes``,
    ``fetched_at``, ``settled``, ``status`` (one of :data:`WINDOW_STATUSES`).
    ``missing`` lists (sms_type, day) inside each type's first and last day
    that were never fetched. ``foreign`` lists the objects under ``sms/`` that
    are not data. ``manifest_problem`` says what was wrong with the manifest
    (its windows were then rebuilt from the files).
    """

    lake: str
    windows: pl.DataFrame
    missing: list[tuple[int, date]]
    foreign: list[str] = field(default_factory=list)
    manifest_problem: str | None = None

    @property
    def rows(self) -> int:
        """Rows stored over the whole lake."""
        return int(self.windows["rows"].sum())

    @property
    def healthy(self) -> bool:
        """True when every window is ``ok``, nothing foreign is stored and the manifest is whole.

        Missing and unsettled windows are not damage: the next sync fetches them.
        """
        return (
            self.manifest_problem is None
            and not self.foreign
            and bool((self.windows["status"] == "ok").all())
        )

    def summary(self) -> str:
        """Describe the lake in a few lines for people."""
        if self.windows.height == 0 and self.healthy:
            return f"lake {self.lake}: empty (run `esms-analytics sync` to fill it)"
        lines = [f"lake {self.lake}"]
        if self.windows.height:
            unsettled = self.windows.filter(~pl.col("settled"))
            first, last = self.windows["date"].min(), self.windows["date"].max()
            last_fetch = self.windows["fetched_at"].max()
            fetched = (
                f"{last_fetch:%Y-%m-%d %H:%M:%S %z}"
                if isinstance(last_fetch, datetime)
                else "unknown"
            )
            lines += [
                f"  days {first!s} .. {last!s}, {self.windows.height} windows, {self.rows:,} "
                f"rows, {int(self.windows['file_bytes'].sum()) / 1e6:.1f} MB",
                f"  last fetch {fetched}",
                f"  unsettled windows: {unsettled.height}"
                + (f" (from {unsettled['date'].min()!s})" if unsettled.height else ""),
                f"  missing windows: {len(self.missing)}"
                + (f" (first {self.missing[0][0]}/{self.missing[0][1]})" if self.missing else ""),
            ]
        if self.manifest_problem:
            lines.append(f"  manifest: {self.manifest_problem}; the next sync writes it anew")
        problems = self.windows.filter(pl.col("status") != "ok")
        for problem in problems.iter_rows(named=True):
            lines.append(
                f"  {problem['status']}: sms_type={problem['sms_type']} "
                f"date={problem['date']}; repair with sync --refresh of that day"
            )
        for key in self.foreign:
            lines.append(
                f"  foreign: {key} is not data (data is only part-0.parquet); move it out of "
                "sms/ (sync --refresh of its day moves it to _quarantine/)"
            )
        lines.append("  healthy" if self.healthy else "  NOT healthy: see the lines above")
        return "\n".join(lines)


_INFO_SCHEMA: Final = {
    "sms_type": pl.Int16(),
    "date": pl.Date(),
    "rows": pl.Int64(),
    "file_bytes": pl.Int64(),
    "fetched_at": pl.Datetime("us", TIME_ZONE),
    "settled": pl.Boolean(),
    "status": pl.String(),
}


def lake_info(lake: LakeLocation, *, storage_options: Mapping[str, str] | None = None) -> LakeInfo:
    """Summarise a lake (a path, a URL or a store) from its manifest and its files' footers.

    Reads each data file's footer (rows, columns, partition facts), never its
    pages: :func:`~esms_analytics.check.check_lake` reads those.
    """
    store = open_lake(lake, create=False, storage_options=storage_options)
    manifest = Manifest(store)
    table = open_table(store)
    if table is not None:
        return _table_info(store, manifest, table)
    found = lake_inventory(store)
    files = {window_key(file.sms_type, file.date): file for file in found.files}
    keys = sorted(set(manifest.entries) | set(files))
    statuses = map_files(
        store, lambda key: _window_status(store, files.get(key), manifest.entries.get(key)), keys
    )
    records = []
    for key, (status, size, rows) in zip(keys, statuses, strict=True):
        entry = manifest.entries.get(key)
        file = files.get(key)
        records.append(
            {
                "sms_type": entry.sms_type if entry else file.sms_type if file else 0,
                "date": entry.date if entry else file.date if file else None,
                "rows": entry.rows if entry else rows,
                "file_bytes": size,
                "fetched_at": entry.fetched_at if entry else None,
                "settled": entry.settled if entry else False,
                "status": status,
            }
        )
    windows = pl.DataFrame(records, schema=_INFO_SCHEMA).sort("sms_type", "date")
    return LakeInfo(
        store.location, windows, _missing_days(windows), found.foreign, manifest.problem
    )


def _table_info(store: LakeStore, manifest: Manifest, table: TableFormat) -> LakeInfo:
    """Summarise a table lake: the manifest's windows against the table's partitions.

    ``file_bytes`` are the bytes of the partition's data files in the table's
    current version; a window recorded with rows whose partition that version
    lacks is ``missing_file``, a partition the manifest does not record
    ``unrecorded`` (``lake check`` reads the table's log and files).
    """
    sizes = table.partition_bytes() if table.exists() else {}
    partitions = set(sizes)
    records = []
    for entry in manifest.entries.values():
        held = (entry.sms_type, entry.date) in partitions
        records.append(
            {
                "sms_type": entry.sms_type,
                "date": entry.date,
                "rows": entry.rows,
                "file_bytes": sizes.get((entry.sms_type, entry.date), 0),
                "fetched_at": entry.fetched_at,
                "settled": entry.settled,
                "status": "ok" if held or not entry.rows else "missing_file",
            }
        )
    for sms_type, day in sorted(
        partitions - {(e.sms_type, e.date) for e in manifest.entries.values()}
    ):
        records.append(
            {
                "sms_type": sms_type,
                "date": day,
                "rows": 0,
                "file_bytes": sizes[(sms_type, day)],
                "fetched_at": None,
                "settled": False,
                "status": "unrecorded",
            }
        )
    windows = pl.DataFrame(records, schema=_INFO_SCHEMA).sort("sms_type", "date")
    return LakeInfo(store.location, windows, _missing_days(windows), [], manifest.problem)


def _missing_days(windows: pl.DataFrame) -> list[tuple[int, date]]:
    missing = []
    for (sms_type,), group in windows.group_by("sms_type", maintain_order=True):
        known = set(group["date"].to_list())
        day, last = group["date"].min(), group["date"].max()
        assert isinstance(day, date)
        assert isinstance(last, date)
        while day <= last:
            if day not in known:
                missing.append((int(sms_type), day))
            day += timedelta(days=1)
    return missing


def _window_status(
    store: LakeStore, file: PartitionFile | None, entry: WindowEntry | None
) -> tuple[str, int, int]:
    """Return (status, file bytes, rows in the file) of one window."""
    if file is None:
        return ("missing_file" if entry is not None and entry.rows else "ok"), 0, 0
    try:
        footer = read_footer(store, file)
    except CorruptPartitionError:
        return "corrupt", file.size, 0
    if entry is None:
        return "unrecorded", file.size, footer.rows
    problem = footer.problem(file) or ("rows_differ" if footer.rows != entry.rows else None)
    return problem or "ok", file.size, footer.rows


# -- check: every page ---------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing ``check_lake`` found: a ``problem`` (exit 5) or a ``warning``."""

    severity: Literal["problem", "warning"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass(frozen=True)
class LakeCheck:
    """The outcome of :func:`check_lake`.

    Attributes
    ----------
    lake : str
    info : LakeInfo
        What ``lake info`` says of the same lake (footers and manifest).
    files, rows : int
        Data files read page by page, and the rows they hold.
    findings : list of Finding
        Every problem and warning, problems first.
    """

    lake: str
    info: LakeInfo
    files: int
    rows: int
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """True when nothing but warnings was found."""
        return not any(finding.severity == "problem" for finding in self.findings)

    def summary(self) -> str:
        """Describe the check for people: the counts, then one line per finding."""
        problems = sum(finding.severity == "problem" for finding in self.findings)
        warnings = len(self.findings) - problems
        lines = [
            f"lake {self.lake}: read every page of {self.files:,} files, {self.rows:,} rows; "
            f"{problems} problems, {warnings} warnings"
        ]
        lines += [f"  {finding}" for finding in self.findings]
        lines.append(
            "  ok" if self.ok else "  NOT ok: repair with sync --refresh of each day named"
        )
        return "\n".join(lines)


def check_lake(
    lake: LakeLocation, *, storage_options: Mapping[str, str] | None = None
) -> LakeCheck:
    """Read every page of every data file and check the rows against the manifest.

    Problems: a file that cannot be read to its last page, wrong columns,
    metadata naming another partition, rows labelled with another SmsType than
    their partition's, a row count other than the manifest's,
    a window the manifest counts rows for with no file, a data file the
    manifest does not list, a foreign object, a missing or damaged manifest,
    a non-finite ``sell_price``. Warnings: negative ``sell_price`` rows.
    Memory holds one row group (131,072 rows) per file being read.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import timedelta
    >>> from esms_analytics.sync import sync
    >>> from esms_analytics.simulator import Simulator
    >>> lake = tempfile.mkdtemp()
    >>> with Simulator(daily_volume=50, days=5) as sim, sim.client() as client:
    ...     _ = sync(lake, sim.today - timedelta(days=2), sim.today - timedelta(days=1),
    ...              client=client, progress=False)
    >>> check = check_lake(lake)
    >>> check.ok, check.files == check.info.windows.filter(pl.col("rows") > 0).height
    (True, True)
    """
    store = open_lake(lake, create=False, storage_options=storage_options)
    info = lake_info(store)
    files = lake_inventory(store).files
    findings: list[Finding] = []
    if info.manifest_problem:
        findings.append(Finding("problem", "_manifest.json", info.manifest_problem))
    findings += [
        Finding("problem", key, "not data: only part-0.parquet is; move it out of sms/")
        for key in info.foreign
    ]
    for row in info.windows.filter(pl.col("status") != "ok").iter_rows(named=True):
        findings.append(
            Finding(
                "problem",
                f"sms_type={row['sms_type']} date={row['date']}",
                f"{row['status']} ({_STATUS_WORDS[row['status']]})",
            )
        )
    recorded = {
        (sms_type, day): rows
        for sms_type, day, rows in info.windows.select("sms_type", "date", "rows").iter_rows()
    }
    pages = map_files(store, lambda file: _read_pages(store, file), files)
    for file, (rows, found) in zip(files, pages, strict=True):
        findings += found
        expected = recorded.get((file.sms_type, file.date))
        if not found and expected is not None and rows != expected:
            findings.append(
                Finding("problem", file.key, f"{rows} rows read, the manifest records {expected}")
            )
    findings.sort(key=lambda finding: finding.severity != "problem")
    return LakeCheck(
        store.location,
        info,
        len(files),
        sum(rows for rows, _ in pages),
        findings,
    )


_STATUS_WORDS: Final = {
    "missing_file": "the manifest records rows but no data file holds them",
    "corrupt": "the file's footer cannot be read",
    "wrong_schema": "the file's columns are not the lake's",
    "wrong_partition": "the file's metadata names another type or day",
    "rows_differ": "the file holds another number of rows than the manifest records",
    "unrecorded": "a data file the manifest does not list",
}


def _read_pages(store: LakeStore, file: PartitionFile) -> tuple[int, list[Finding]]:
    """Read every row group of a file: (rows read, findings)."""
    counts = _RowCounts()
    try:
        with store.open_read(file.key) as handle:
            parquet = pq.ParquetFile(handle)
            for group in range(parquet.num_row_groups):
                counts.add(parquet.read_row_group(group), SMS_TYPES.get(file.sms_type, ""))
    except (OSError, pa.ArrowException) as exc:
        return counts.rows, [
            Finding("problem", file.key, f"cannot be read to its last page ({exc})")
        ]
    found = []
    if counts.other_type:
        found.append(
            Finding(
                "problem",
                file.key,
                f"{counts.other_type} rows are labelled with another SmsType than "
                f"sms_type={file.sms_type}",
            )
        )
    if counts.not_finite:
        found.append(
            Finding("problem", file.key, f"{counts.not_finite} rows have a non-finite sell_price")
        )
    if counts.negative:
        found.append(
            Finding(
                "warning", file.key, f"{counts.negative} rows have a negative sell_price (refunds?)"
            )
        )
    return counts.rows, found


@dataclass
class _RowCounts:
    """What the rows of one file hold, row group by row group."""

    rows: int = 0
    other_type: int = 0
    not_finite: int = 0
    negative: int = 0

    def add(self, table: pa.Table, label: str) -> None:
        self.rows += table.num_rows
        if "sms_type_label" in table.column_names:
            labels = table.column("sms_type_label").cast(pa.string())
            self.other_type += _count_true(pc.not_equal(labels, label))
        if "sell_price" in table.column_names:
            price = table.column("sell_price")
            if pa.types.is_floating(price.type):
                self.not_finite += _count_true(pc.invert(pc.is_finite(price)))
            self.negative += _count_true(pc.less(price, 0))


def _count_true(mask: pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0)
