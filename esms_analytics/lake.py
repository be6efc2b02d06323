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

The lake lives wherever its :class:`~esms_analytics.store.LakeStore` says: a
local directory or a prefix in an object store (``s3://``, ``gs://``,
``az://``). Every write replaces one object atomically (on disk a hidden
temporary file, fsynced and renamed; in a bucket one PUT): a reader or a
crash sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from esms_analytics.arguments import optional_date
from esms_analytics.codes import TIME_ZONE
from esms_analytics.decode import SCHEMA
from esms_analytics.errors import ConfigError, CorruptPartitionError, LakeError
from esms_analytics.store import LOCK_NAME, LakeLocation, LakeStore, ObjectInfo, open_store

SCHEMA_VERSION: Final = "1"
DATA_DIR: Final = "sms"
PART_NAME: Final = "part-0.parquet"
MANIFEST_NAME: Final = "_manifest.json"
ROW_GROUP_ROWS: Final = 128 * 1024
#: Where a lake's rows came from, kept in the manifest: the two never share a lake.
SOURCE_ESMS: Final = "esms"
SOURCE_SIMULATOR: Final = "simulator"
#: Columns that come from the path, not the files.
PARTITION_SCHEMA: Final = pl.Schema({"sms_type": pl.Int16(), "date": pl.Date()})
#: What :func:`read_lake` returns: the canonical columns, then the partition day.
LAKE_SCHEMA: Final = pl.Schema({**SCHEMA, "date": pl.Date()})
_FILE_COLUMNS: Final = [name for name in SCHEMA if name != "sms_type"]


def partition_key(sms_type: int, day: date) -> str:
    """Return the key prefix of one (SmsType, day) partition, under the lake's root."""
    return f"{DATA_DIR}/sms_type={sms_type}/date={day.isoformat()}"


def open_lake(
    lake: LakeLocation,
    *,
    create: bool,
    storage_options: Mapping[str, str] | None = None,
) -> LakeStore:
    """Open the store of ``lake`` (a path, a URL or a store), checked; created if asked.

    A missing bucket, refused credentials or a path that is a file raise
    :class:`LakeError` here, before anything is fetched or written.
    """
    store = open_store(lake, storage_options=storage_options)
    store.prepare(create=create)
    # A folder with no manifest and no partitions is not a lake (lake/sms, a typo...).
    if not create and store.head(MANIFEST_NAME) is None and not _has_data_folder(store):
        raise LakeError(_not_a_lake(store), lake=store.location)
    return store


def _has_data_folder(store: LakeStore) -> bool:
    if store.is_local:
        return Path(store.uri(DATA_DIR)).is_dir()
    return bool(store.list_dirs(f"{DATA_DIR}/"))  # a bucket has no empty folders


def _not_a_lake(store: LakeStore) -> str:
    where = store.location.rstrip("/")
    parent = where.rpartition("/")[0]
    if where.endswith(f"/{DATA_DIR}") or (
        store.is_local and (Path(store.uri("")).parent / MANIFEST_NAME).exists()
    ):
        return (
            f"{where} is inside a lake, not a lake: give the folder that holds {DATA_DIR}/ "
            f"and {MANIFEST_NAME} ({parent})"
        )
    return (
        f"{where} is not a lake: it has no {MANIFEST_NAME} and no {DATA_DIR}/ folder; give "
        "the folder `esms-analytics sync --lake` filled"
    )


# -- writing ----------------------------------------------------------------


def write_partition(
    lake: LakeLocation, sms_type: int, day: date, frame: pl.DataFrame, *, fetched_at: datetime
) -> str | None:
    """Replace the partition of (``sms_type``, ``day``) with ``frame``, atomically.

    Returns the key of the file written, or None for an empty window (whose old
    file, if any, is removed).
    """
    if frame.schema != SCHEMA:
        raise ConfigError("write_partition takes a frame with exactly esms_analytics.SCHEMA")
    other_types = frame.filter(pl.col("sms_type") != sms_type)["sms_type"].unique().to_list()
    if other_types:
        raise ConfigError(
            f"rows of SmsType {other_types} cannot go to the sms_type={sms_type} partition"
        )
    store = open_store(lake)
    directory = partition_key(sms_type, day)
    if frame.height == 0:
        for stale in store.list_files(f"{directory}/"):
            if _is_data_file(stale.key):
                store.delete(stale.key)
        return None
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
    target = f"{directory}/{PART_NAME}"
    with store.writer(target) as file:
        pq.write_table(
            table,
            file,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            write_statistics=True,
            use_dictionary=True,
            coerce_timestamps="us",
        )
    return target


def _is_data_file(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.startswith("part-") and name.endswith(".parquet")


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

    def __init__(self, lake: LakeLocation):
        self.store = open_store(lake)
        self._lock = threading.Lock()
        self.entries: dict[str, WindowEntry] = {}
        #: ``esms`` or ``simulator`` once a window was stored (None in older lakes).
        self.source: str | None = None
        text = self.store.read(MANIFEST_NAME)
        if text is not None:
            try:
                data = json.loads(text.decode("utf-8"))
                self.source = data.get("source")
                self.entries = {
                    key: WindowEntry.from_json(value) for key, value in data["windows"].items()
                }
            except (ValueError, KeyError, TypeError) as exc:
                raise LakeError(
                    f"the manifest {self.store.uri(MANIFEST_NAME)} is unreadable ({exc}); move it "
                    "aside and run `esms-analytics sync --refresh` over the lake's days to "
                    "rebuild it",
                    lake=self.store.location,
                    partition=MANIFEST_NAME,
                ) from exc

    def get(self, sms_type: int, day: date) -> WindowEntry | None:
        """Return the entry of a window, if it was ever fetched."""
        return self.entries.get(window_key(sms_type, day))

    def claim(self, source: str) -> None:
        """Check that rows from ``source`` may join the lake; the next save records it."""
        with self._lock:
            if self.source is None:
                self.source = source
            elif self.source != source:
                lake = self.store.location
                raise LakeError(
                    f"the lake {lake} holds rows from the {self.source}; rows from the "
                    f"{source} cannot join them (reports would mix real and simulated "
                    "messages): give another --lake",
                    lake=str(lake),
                )

    def record(self, entry: WindowEntry) -> None:
        """Store ``entry`` and save the manifest (thread-safe)."""
        with self._lock:
            self.entries[entry.key] = entry
            payload = {
                "schema_version": SCHEMA_VERSION,
                **({"source": self.source} if self.source else {}),
                "windows": {key: self.entries[key].to_json() for key in sorted(self.entries)},
            }
            self.store.write(
                MANIFEST_NAME, json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8")
            )


# -- the lock -----------------------------------------------------------------


@contextlib.contextmanager
def lake_lock(lake: LakeLocation) -> Iterator[LakeStore]:
    """Hold the lake's sync lock, or raise :class:`LakeLockedError` at once.

    On disk an ``flock`` on ``_sync.lock`` (the kernel releases it however its
    holder dies); in an object store a leased lock object (see
    :mod:`esms_analytics.store`).
    """
    store = open_store(lake)
    with store.lock():
        yield store


def discard_unused_lake(store: LakeStore) -> bool:
    """Remove a local lake holding nothing but the lock and empty folders; True if removed.

    For a first sync that stored nothing: it leaves no lake behind. Call it
    holding the lock (unlinking a held lock is safe: the kernel lock goes with
    the descriptor). Anything else in the folder keeps it; a bucket is left alone.
    """
    if not store.is_local or store.head(MANIFEST_NAME) is not None:
        return False
    lake = Path(store.uri(""))
    inside = list(lake.rglob("*"))
    if any(not path.is_dir() and path != lake / LOCK_NAME for path in inside):
        return False
    try:
        (lake / LOCK_NAME).unlink(missing_ok=True)
        folders = [path for path in inside if path.is_dir()]
        for directory in sorted(folders, key=lambda path: len(path.parts), reverse=True):
            directory.rmdir()
        lake.rmdir()
    except OSError:
        return False
    return True


def remove_stale_temporaries(lake: LakeLocation) -> int:
    """Delete what a killed sync left behind; call it holding the lock. Returns how many."""
    return open_store(lake).clear_litter()


# -- reading ------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionFile:
    """One data file of the lake, with the partition its path names."""

    sms_type: int
    date: date
    key: str
    size: int


def partition_files(
    lake: LakeLocation,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
) -> list[PartitionFile]:
    """List the data files of the lake, pruned by type and day from their keys alone.

    Only the types asked for are listed, each from its first day asked for on
    (a listing that starts after a key), so reading a week of a years-old
    lake never lists the whole lake.
    """
    store = open_store(lake)
    if sms_types is None:
        types = sorted(
            int(name.partition("=")[2])
            for name in store.list_dirs(f"{DATA_DIR}/")
            if name.startswith("sms_type=") and name.partition("=")[2].isdigit()
        )
    else:
        types = sorted(set(sms_types))
    found = []
    for sms_type in types:
        prefix = f"{DATA_DIR}/sms_type={sms_type}/"
        first = f"{prefix}date={start.isoformat()}" if start else None
        for info in store.list_files(prefix, start_after=first):
            parsed = _parse_key(info, prefix)
            if parsed is not None and (end is None or parsed.date <= end):
                found.append(PartitionFile(sms_type, parsed.date, info.key, info.size))
    return found


def _parse_key(info: ObjectInfo, prefix: str) -> PartitionFile | None:
    """Parse the partition of ``<prefix>date=D/part-N.parquet``; None for anything else."""
    folder, _, name = info.key.removeprefix(prefix).partition("/")
    if "/" in name or not _is_data_file(name) or not folder.startswith("date="):
        return None
    try:
        day = date.fromisoformat(folder.removeprefix("date="))
    except ValueError:
        return None
    return PartitionFile(-1, day, info.key, info.size)


def check_file(store: LakeStore, file: PartitionFile, *, thorough: bool = True) -> int:
    """Check a partition file; its row count, or :class:`CorruptPartitionError`.

    ``thorough`` parses the footer (what ``lake info`` does). Otherwise only the
    ``PAR1`` marks at both ends are read, which catches the usual damage (a file
    cut short by a full disk or a partial copy) at a fraction of the cost, and
    the row count is not known (-1).
    """
    try:
        if thorough:
            with store.open_read(file.key) as handle:
                return int(pq.read_metadata(handle).num_rows)
        if file.size < 8:
            raise OSError(f"the file has only {file.size} bytes")
        head = store.read_range(file.key, 0, 4)
        tail = store.read_range(file.key, file.size - 4, file.size)
        if head != b"PAR1" or tail != b"PAR1":
            raise OSError("the file does not start and end with the Parquet mark PAR1")
        return -1
    except (OSError, pa.ArrowException) as exc:
        raise CorruptPartitionError(
            lake=store.location,
            partition=store.uri(file.key),
            sms_type=file.sms_type,
            day=file.date.isoformat(),
            problem=str(exc),
        ) from exc


def read_lake(
    lake: LakeLocation,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    sms_types: Sequence[int] | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> pl.LazyFrame:
    """Scan the lake as one LazyFrame: the canonical schema plus the partition ``date``.

    ``lake`` is a directory, an object-store URL (``s3://bucket/prefix``...) or
    a :class:`~esms_analytics.store.LakeStore`; ``storage_options`` add to the
    cloud's standard environment. ``start``/``end`` (creation days, inclusive)
    and ``sms_types`` prune whole partitions from their keys before anything is
    read; every other filter and the column selection are pushed down to the
    Parquet scan (Polars reads object stores directly). Every file's Parquet
    marks are checked first, so a file cut short is named at once, not in the
    middle of a report (``lake info`` parses every footer).

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
    store = open_lake(lake, create=False, storage_options=storage_options)
    files = partition_files(
        store, start=optional_date(start), end=optional_date(end), sms_types=sms_types
    )
    _check_marks(store, files)
    if not files:
        return pl.LazyFrame(schema=LAKE_SCHEMA)
    scan = pl.scan_parquet(
        [store.uri(file.key) for file in files],
        hive_partitioning=True,
        hive_schema=dict(PARTITION_SCHEMA),
        storage_options=store.storage_options,
    )
    return scan.select(list(LAKE_SCHEMA)).cast(dict(LAKE_SCHEMA))  # type: ignore[arg-type]


def _check_marks(store: LakeStore, files: list[PartitionFile]) -> None:
    if store.is_local or len(files) < 2:
        for file in files:
            check_file(store, file, thorough=False)
        return
    # Two small ranged reads a file: over a network, run them side by side.
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="esms-check") as pool:
        for _ in pool.map(lambda file: check_file(store, file, thorough=False), files):
            pass


# -- information --------------------------------------------------------------


@dataclass(frozen=True)
class LakeInfo:
    """What a lake holds: one row per known window, and what is missing.

    ``windows`` columns: ``sms_type``, ``date``, ``rows``, ``file_bytes``,
    ``fetched_at``, ``settled``, ``status`` (``ok``, ``missing_file`` or
    ``corrupt``). ``missing`` lists (sms_type, day) inside each type's first
    and last day that were never fetched.
    """

    lake: str
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


def lake_info(lake: LakeLocation, *, storage_options: Mapping[str, str] | None = None) -> LakeInfo:
    """Summarise a lake (a path, a URL or a store) from its manifest and its files' footers."""
    store = open_lake(lake, create=False, storage_options=storage_options)
    manifest = Manifest(store)
    files = {(file.sms_type, file.date): file for file in partition_files(store)}
    wanted = [entry for entry in manifest.entries.values() if entry.rows]
    with ThreadPoolExecutor(max_workers=1 if store.is_local else 8) as pool:
        statuses = dict(
            zip(
                [entry.key for entry in wanted],
                pool.map(lambda entry: _file_status(store, files, entry), wanted),
                strict=True,
            )
        )
    records = []
    for entry in manifest.entries.values():
        status, size = statuses.get(entry.key, ("ok", 0))
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
    return LakeInfo(store.location, windows, missing)


def _file_status(
    store: LakeStore, files: dict[tuple[int, date], PartitionFile], entry: WindowEntry
) -> tuple[str, int]:
    file = files.get((entry.sms_type, entry.date))
    if file is None or file.key != f"{partition_key(entry.sms_type, entry.date)}/{PART_NAME}":
        return "missing_file", 0
    try:
        check_file(store, file)
    except CorruptPartitionError:
        return "corrupt", file.size
    return "ok", file.size
