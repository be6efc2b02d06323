"""The Parquet lake: one Hive-style partition per (SmsType, creation day).

Layout (a public contract, see README "The lake"):

::

    <lake>/
      sms/sms_type=<code>/date=<YYYY-MM-DD>/part-0.parquet
      _manifest.json      what was fetched when, and whether it has settled
      _sync.lock          held by a running sync

- ``date`` is the Vietnam-local *creation* day of the window the rows were
  fetched for; a partition is exactly the service's answer for one
  (type, day) window and a new fetch replaces it whole.
- ``sms_type`` and ``date`` live in the path only, never inside the files.
- Files: zstd, column statistics, timestamps as microseconds adjusted to UTC
  (``Asia/Ho_Chi_Minh`` recorded in the Arrow schema), labels as
  dictionary-encoded strings (with their Enum categories in the Arrow field
  metadata, for Polars), ``esms_analytics.schema_version`` in the key-value
  metadata, row groups of :data:`ROW_GROUP_ROWS` rows.
- A window with no rows has no file (its manifest entry says ``rows: 0``).
- Names starting with ``_`` or ``.`` are not data: Spark, Hive, Trino and
  pyarrow skip them, and temporary files use them.

Writes go to a hidden temporary file in the partition directory, are fsynced
and renamed over ``part-0.parquet``: a reader or a crash sees the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from esms_analytics.arguments import optional_date
from esms_analytics.codes import TIME_ZONE, VN_TZ
from esms_analytics.decode import SCHEMA
from esms_analytics.errors import ConfigError, CorruptPartitionError, LakeError, LakeLockedError

SCHEMA_VERSION: Final = "1"
DATA_DIR: Final = "sms"
PART_NAME: Final = "part-0.parquet"
MANIFEST_NAME: Final = "_manifest.json"
LOCK_NAME: Final = "_sync.lock"
ROW_GROUP_ROWS: Final = 128 * 1024
#: Columns that come from the path, not the files.
PARTITION_SCHEMA: Final = pl.Schema({"sms_type": pl.Int16(), "date": pl.Date()})
#: What :func:`read_lake` returns: the canonical columns, then the partition day.
LAKE_SCHEMA: Final = pl.Schema({**SCHEMA, "date": pl.Date()})
_FILE_COLUMNS: Final = [name for name in SCHEMA if name != "sms_type"]


def partition_path(lake: Path, sms_type: int, day: date) -> Path:
    """Return the directory of one (SmsType, day) partition."""
    return lake / DATA_DIR / f"sms_type={sms_type}" / f"date={day.isoformat()}"


def open_lake(lake: str | os.PathLike[str], *, create: bool) -> Path:
    """Check that ``lake`` can be used as a lake directory; create it if asked."""
    path = Path(lake).expanduser()
    if path.exists() and not path.is_dir():
        raise LakeError(
            f"the lake path {path} is a file, not a directory; give a directory", lake=str(path)
        )
    if not path.exists():
        if not create:
            raise LakeError(
                f"there is no lake at {path}; run `esms-analytics sync --lake {path} ...` first",
                lake=str(path),
            )
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise LakeError(
                f"cannot create the lake directory {path}: {exc.strerror}", lake=str(path)
            ) from exc
    if create and not os.access(path, os.W_OK | os.X_OK):
        raise LakeError(
            f"the lake directory {path} is not writable; fix its permissions", lake=str(path)
        )
    return path


# -- writing ----------------------------------------------------------------


def write_partition(
    lake: Path, sms_type: int, day: date, frame: pl.DataFrame, *, fetched_at: datetime
) -> Path | None:
    """Replace the partition of (``sms_type``, ``day``) with ``frame``, atomically.

    Returns the file written, or None for an empty window (whose old file, if
    any, is removed).
    """
    if frame.schema != SCHEMA:
        raise ConfigError("write_partition takes a frame with exactly esms_analytics.SCHEMA")
    other_types = frame.filter(pl.col("sms_type") != sms_type)["sms_type"].unique().to_list()
    if other_types:
        raise ConfigError(
            f"rows of SmsType {other_types} cannot go to the sms_type={sms_type} partition"
        )
    directory = partition_path(lake, sms_type, day)
    target = directory / PART_NAME
    if frame.height == 0:
        for stale in directory.glob("part-*.parquet"):
            stale.unlink()
        return None
    directory.mkdir(parents=True, exist_ok=True)
    table = _to_arrow(frame.select(_FILE_COLUMNS))
    table = table.replace_schema_metadata(
        {
            **(table.schema.metadata or {}),
            b"esms_analytics.schema_version": SCHEMA_VERSION.encode(),
            b"esms_analytics.sms_type": str(sms_type).encode(),
            b"esms_analytics.date": day.isoformat().encode(),
            b"esms_analytics.fetched_at": fetched_at.isoformat().encode(),
        }
    )
    temporary = directory / f".{PART_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        pq.write_table(
            table,
            temporary,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            write_statistics=True,
            use_dictionary=True,
            coerce_timestamps="us",
        )
        _fsync(temporary)
        os.replace(temporary, target)
        _fsync(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return target


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    # Labels stay Arrow dictionaries of plain strings: in Parquet they are ordinary
    # dictionary-encoded strings that every engine reads, while the Enum categories
    # Polars records in the field metadata let read_lake take them back as Enums
    # without converting every row. Large strings become strings, which all read.
    table = frame.to_arrow()
    fields = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = pa.dictionary(kind.index_type, pa.string(), kind.ordered)
        elif pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(field.name, kind, nullable=True, metadata=field.metadata))
    return table.cast(pa.schema(fields))


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- the manifest -------------------------------------------------------------


@dataclass(frozen=True)
class WindowEntry:
    """What the manifest knows of one (SmsType, day) window."""

    sms_type: int
    date: date
    fetched_at: datetime
    rows: int
    count_total: int
    requests: int
    settled: bool

    @property
    def key(self) -> str:
        """The manifest key: ``<sms_type>/<date>``."""
        return window_key(self.sms_type, self.date)

    def to_json(self) -> dict[str, Any]:
        """Return the manifest's JSON form."""
        return {
            "sms_type": self.sms_type,
            "date": self.date.isoformat(),
            "fetched_at": self.fetched_at.isoformat(),
            "rows": self.rows,
            "count_total": self.count_total,
            "requests": self.requests,
            "settled": self.settled,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowEntry:
        """Parse one manifest entry."""
        return cls(
            sms_type=int(data["sms_type"]),
            date=date.fromisoformat(data["date"]),
            fetched_at=datetime.fromisoformat(data["fetched_at"]),
            rows=int(data["rows"]),
            count_total=int(data["count_total"]),
            requests=int(data["requests"]),
            settled=bool(data["settled"]),
        )


def window_key(sms_type: int, day: date) -> str:
    """Return the manifest key of a window."""
    return f"{sms_type}/{day.isoformat()}"


class Manifest:
    """The lake's ``_manifest.json``: one entry per fetched window, saved atomically."""

    def __init__(self, lake: Path):
        self.path = lake / MANIFEST_NAME
        self._lock = threading.Lock()
        self.entries: dict[str, WindowEntry] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text("utf-8"))
                self.entries = {
                    key: WindowEntry.from_json(value) for key, value in data["windows"].items()
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise LakeError(
                    f"the manifest {self.path} is unreadable ({exc}); move it aside and run "
                    "`esms-analytics sync --refresh` over the lake's days to rebuild it",
                    lake=str(lake),
                ) from exc

    def get(self, sms_type: int, day: date) -> WindowEntry | None:
        """Return the entry of a window, if it was ever fetched."""
        return self.entries.get(window_key(sms_type, day))

    def record(self, entry: WindowEntry) -> None:
        """Store ``entry`` and save the manifest (thread-safe)."""
        with self._lock:
            self.entries[entry.key] = entry
            payload = {
                "schema_version": SCHEMA_VERSION,
                "windows": {key: self.entries[key].to_json() for key in sorted(self.entries)},
            }
            temporary = self.path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(payload, indent=1, ensure_ascii=False), "utf-8")
            _fsync(temporary)
            os.replace(temporary, self.path)


# -- the lock -----------------------------------------------------------------


@contextlib.contextmanager
def lake_lock(lake: Path) -> Iterator[None]:
    """Hold the lake's sync lock, or raise :class:`LakeLockedError` at once.

    The lock is an ``flock`` on ``_sync.lock``: the kernel releases it when
    the holder exits, however it dies, so a crashed sync never blocks the next.
    """
    path = lake / LOCK_NAME
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
            raise LakeLockedError(lake=str(lake), holder=holder) from exc
        os.ftruncate(descriptor, 0)
        os.pwrite(
            descriptor,
            f"pid {os.getpid()} since {datetime.now(VN_TZ):%Y-%m-%d %H:%M:%S}".encode(),
            0,
        )
        yield
    finally:
        os.close(descriptor)


def remove_stale_temporaries(lake: Path) -> int:
    """Delete the temporary files a killed sync left behind; call it holding the lock.

    Only a sync holding the lock writes temporary files, so under the lock every
    one found is litter of a process that died mid-write. Returns how many.
    """
    stale = [*lake.glob(f".{MANIFEST_NAME}.*.tmp"), *lake.glob(f"{DATA_DIR}/*/*/.*.tmp")]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return len(stale)


# -- reading ------------------------------------------------------------------


def partition_files(
    lake: Path,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
) -> list[tuple[int, date, Path]]:
    """List the data files of the lake, pruned by day and type from their paths alone."""
    found: list[tuple[int, date, Path]] = []
    for type_dir in sorted((lake / DATA_DIR).glob("sms_type=*")):
        try:
            sms_type = int(type_dir.name.partition("=")[2])
        except ValueError:
            continue
        if sms_types is not None and sms_type not in sms_types:
            continue
        for day_dir in sorted(type_dir.glob("date=*")):
            try:
                day = date.fromisoformat(day_dir.name.partition("=")[2])
            except ValueError:
                continue
            if (start and day < start) or (end and day > end):
                continue
            found.extend((sms_type, day, file) for file in sorted(day_dir.glob("part-*.parquet")))
    return found


def check_file(path: Path, sms_type: int, day: date, *, thorough: bool = True) -> int:
    """Check a partition file; its row count, or :class:`CorruptPartitionError`.

    ``thorough`` parses the footer (what ``lake info`` does). Otherwise only the
    ``PAR1`` marks at both ends are read, which catches the usual damage (a file
    cut short by a full disk or a partial copy) at a fraction of the cost, and
    the row count is not known (-1).
    """
    try:
        if thorough:
            return int(pq.read_metadata(path).num_rows)
        with path.open("rb") as file:
            head = file.read(4)
            file.seek(-4, os.SEEK_END)
            if head != b"PAR1" or file.read(4) != b"PAR1":
                raise OSError("the file does not start and end with the Parquet mark PAR1")
        return -1
    except (OSError, pa.ArrowException) as exc:
        raise CorruptPartitionError(
            lake=str(path.parents[3]),
            partition=str(path),
            sms_type=sms_type,
            day=day.isoformat(),
            problem=str(exc),
        ) from exc


def read_lake(
    lake: str | os.PathLike[str],
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    sms_types: Sequence[int] | None = None,
) -> pl.LazyFrame:
    """Scan the lake as one LazyFrame: the canonical schema plus the partition ``date``.

    ``start``/``end`` (creation days, inclusive) and ``sms_types`` prune whole
    partitions before anything is read; every other filter is pushed down to
    the Parquet scan. Every file's Parquet marks are checked first, so a file
    cut short is named at once, not in the middle of a report (``lake info``
    parses every footer).

    Examples
    --------
    >>> import tempfile
    >>> from datetime import timedelta
    >>> from esms_analytics.sync import sync
    >>> from esms_analytics.simulator import Simulator
    >>> lake = tempfile.mkdtemp()
    >>> with Simulator(daily_volume=50, days=5) as sim, sim.client() as client:
    ...     _ = sync(lake, sim.today - timedelta(days=3), sim.today - timedelta(days=1),
    ...              client=client, progress=False)
    >>> frame = read_lake(lake, sms_types=[2]).collect()
    >>> frame.schema == LAKE_SCHEMA, frame["sms_type"].unique().to_list()
    (True, [2])
    """
    path = open_lake(lake, create=False)
    files = partition_files(
        path, start=optional_date(start), end=optional_date(end), sms_types=sms_types
    )
    for sms_type, day, file in files:
        check_file(file, sms_type, day, thorough=False)
    if not files:
        return pl.LazyFrame(schema=LAKE_SCHEMA)
    scan = pl.scan_parquet(
        [file for _, _, file in files],
        hive_partitioning=True,
        hive_schema=dict(PARTITION_SCHEMA),
    )
    return scan.select(list(LAKE_SCHEMA)).cast(dict(LAKE_SCHEMA))  # type: ignore[arg-type]


# -- information --------------------------------------------------------------


@dataclass(frozen=True)
class LakeInfo:
    """What a lake holds: one row per known window, and what is missing.

    ``windows`` columns: ``sms_type``, ``date``, ``rows``, ``file_bytes``,
    ``fetched_at``, ``settled``, ``status`` (``ok``, ``missing_file`` or
    ``corrupt``). ``missing`` lists (sms_type, day) inside each type's first
    and last day that were never fetched.
    """

    lake: Path
    windows: pl.DataFrame
    missing: list[tuple[int, date]]

    @property
    def rows(self) -> int:
        """Rows stored over the whole lake."""
        return int(self.windows["rows"].sum())

    def summary(self) -> str:
        """Describe the lake in a few lines for people."""
        if self.windows.height == 0:
            return f"lake {self.lake}: empty (run `esms-analytics sync` to fill it)"
        unsettled = self.windows.filter(~pl.col("settled"))
        problems = self.windows.filter(pl.col("status") != "ok")
        first, last = self.windows["date"].min(), self.windows["date"].max()
        last_fetch = self.windows["fetched_at"].max()
        assert isinstance(last_fetch, datetime)
        lines = [
            f"lake {self.lake}",
            f"  days {first!s} .. {last!s}, {self.windows.height} windows, {self.rows:,} rows, "
            f"{int(self.windows['file_bytes'].sum()) / 1e6:.1f} MB",
            f"  last fetch {last_fetch:%Y-%m-%d %H:%M:%S %z}",
            f"  unsettled windows: {unsettled.height}"
            + (f" (from {unsettled['date'].min()!s})" if unsettled.height else ""),
            f"  missing windows: {len(self.missing)}"
            + (f" (first {self.missing[0][0]}/{self.missing[0][1]})" if self.missing else ""),
        ]
        for problem in problems.iter_rows(named=True):
            lines.append(
                f"  {problem['status']}: sms_type={problem['sms_type']} "
                f"date={problem['date']}; repair with sync --refresh of that day"
            )
        return "\n".join(lines)


def lake_info(lake: str | os.PathLike[str]) -> LakeInfo:
    """Summarise a lake from its manifest and its files' footers."""
    path = open_lake(lake, create=False)
    manifest = Manifest(path)
    records = []
    for entry in manifest.entries.values():
        file = partition_path(path, entry.sms_type, entry.date) / PART_NAME
        status, size = "ok", 0
        if entry.rows:
            if not file.exists():
                status = "missing_file"
            else:
                size = file.stat().st_size
                try:
                    check_file(file, entry.sms_type, entry.date)
                except CorruptPartitionError:
                    status = "corrupt"
        records.append(
            {
                "sms_type": entry.sms_type,
                "date": entry.date,
                "rows": entry.rows,
                "file_bytes": size,
                "fetched_at": entry.fetched_at,
                "settled": entry.settled,
                "status": status,
            }
        )
    windows = pl.DataFrame(
        records,
        schema={
            "sms_type": pl.Int16(),
            "date": pl.Date(),
            "rows": pl.Int64(),
            "file_bytes": pl.Int64(),
            "fetched_at": pl.Datetime("us", TIME_ZONE),
            "settled": pl.Boolean(),
            "status": pl.String(),
        },
    ).sort("sms_type", "date")
    missing = []
    for (sms_type,), group in windows.group_by("sms_type", maintain_order=True):
        known = set(group["date"].to_list())
        day, last = group["date"].min(), group["date"].max()
        assert isinstance(day, date)
        assert isinstance(last, date)
        while day <= last:
            if day not in known:
                missing.append((int(sms_type), day))
            day = date.fromordinal(day.toordinal() + 1)
    return LakeInfo(path, windows, missing)
