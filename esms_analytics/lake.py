"""The Parquet lake: one Hive-style partition per (SmsType, creation day).

Layout (a public contract, see README "The lake"):

::

    <lake>/
      sms/sms_type=<code>/date=<YYYY-MM-DD>/part-0.parquet
      _manifest.json      what was fetched when, and whether it has settled
      _manifest.d/        one small journal object per window recorded since
      _quarantine/        what a sync moved out of a partition it rewrote
      _sync.lock          names the sync that holds the lock

- ``date`` is the Vietnam-local *creation* day of the window the rows were
  fetched for; a partition is exactly the service's answer for one
  (type, day) window and a new fetch replaces it whole.
- **Data is exactly** ``sms/sms_type=<code>/date=<day>/part-0.parquet``.
  Any other visible object under ``sms/`` is *foreign*: never read, listed by
  ``lake info`` and ``lake check`` as a problem, and moved to
  ``_quarantine/<when>/<its key>`` when a sync rewrites its partition.
- ``sms_type`` and ``date`` live in the path only, never inside the files.
- Files: zstd, column statistics, dictionaries only on the few-valued
  columns (:data:`DICTIONARY_COLUMNS`), timestamps as microseconds adjusted to UTC
  (``Asia/Ho_Chi_Minh`` recorded in the Arrow schema), labels as
  dictionary-encoded strings (with their Enum categories in the Arrow field
  metadata, for Polars), row groups of :data:`ROW_GROUP_ROWS` rows; the
  key-value metadata holds ``esms_analytics.schema_version``, ``.writer_version``
  (the package version that wrote it), ``.sms_type``,
  ``.date``, ``.fetched_at``, ``.count_total``, ``.requests``,
  ``.settled`` and the lake's ``.privacy`` (with ``.pseudonym_key_fingerprint``
  in a pseudonymised lake, whose columns are
  :data:`~esms_analytics.privacy.policy.PSEUDONYMISED_SCHEMA`'s), so the
  manifest can be rebuilt from the files.
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
import functools
import io
import itertools
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from esms_analytics._version import __version__
from esms_analytics.arguments import DateLike, SmsTypes, date_bounds, sms_type_codes
from esms_analytics.codes import VN_TZ
from esms_analytics.decode import SCHEMA
from esms_analytics.errors import ConfigError, CorruptPartitionError, LakeError
from esms_analytics.files import make_folders, open_file
from esms_analytics.privacy.policy import PSEUDONYMISED, PSEUDONYMISED_SCHEMA, RAW, PrivacyPolicy
from esms_analytics.store import LOCK_NAME, LakeLocation, LakeStore, ObjectInfo, open_store
from esms_analytics.tables import TABLE_MARKER

logger = logging.getLogger("esms_analytics")

#: The lake layout this release reads and writes. A lake (manifest or file) with a higher
#: one was written by a newer release: this one reads it with a warning and refuses to
#: write to it (:class:`~esms_analytics.errors.NewerLakeError`). See the README's
#: "Schema version".
SCHEMA_VERSION: Final = "1"
DATA_DIR: Final = "sms"
PART_NAME: Final = "part-0.parquet"
MANIFEST_NAME: Final = "_manifest.json"
#: Where a sync moves what it finds in a partition it rewrites, and a damaged manifest.
QUARANTINE_DIR: Final = "_quarantine"
ROW_GROUP_ROWS: Final = 128 * 1024
#: Where a lake's rows came from, kept in the manifest: the two never share a lake.
SOURCE_ESMS: Final = "esms"
SOURCE_SIMULATOR: Final = "simulator"
#: Columns that come from the path, not the files.
PARTITION_SCHEMA: Final = pl.Schema({"sms_type": pl.Int16(), "date": pl.Date()})
#: What :func:`read_lake` returns: the canonical columns, then the partition day.
LAKE_SCHEMA: Final = pl.Schema({**SCHEMA, "date": pl.Date()})
#: What :func:`read_lake` returns for a pseudonymised lake (README "Personal data"):
#: :data:`~esms_analytics.privacy.policy.PSEUDONYMISED_SCHEMA`, then the partition day.
PSEUDONYMISED_LAKE_SCHEMA: Final = pl.Schema({**PSEUDONYMISED_SCHEMA, "date": pl.Date()})
#: sync's default settle time, for files written before they recorded ``settled``.
_REBUILD_SETTLE_DAYS: Final = 3
_FILE_COLUMNS: Final = [name for name in SCHEMA if name != "sms_type"]
_PSEUDONYMISED_FILE_COLUMNS: Final = [name for name in PSEUDONYMISED_SCHEMA if name != "sms_type"]
_META: Final = "esms_analytics."
_T = TypeVar("_T")
#: The files each read_lake called inside a reading_lake block listed: where to look
#: for the damaged one when the scan fails, instead of reading every file before it.
_SCANNED: ContextVar[list[tuple[LakeStore, list[PartitionFile]]] | None] = ContextVar(
    "esms_analytics_scanned", default=None
)


def partition_key(sms_type: int, day: date) -> str:
    """Return the key prefix of one (SmsType, day) partition, under the lake's root."""
    return f"{DATA_DIR}/sms_type={sms_type}/date={day.isoformat()}"


def data_key(sms_type: int, day: date) -> str:
    """Return the key of the one data file of a partition."""
    return f"{partition_key(sms_type, day)}/{PART_NAME}"


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
    if (
        not create
        and store.head(MANIFEST_NAME) is None
        and not _has_data_folder(store)
        and store.head(TABLE_MARKER) is None  # a table lake that lost its manifest
    ):
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
    lake: LakeLocation,
    sms_type: int,
    day: date,
    frame: pl.DataFrame,
    *,
    fetched_at: datetime,
    count_total: int | None = None,
    requests: int = 0,
    settled: bool | None = None,
) -> str | None:
    """Replace the partition of (``sms_type``, ``day``) with ``frame``, atomically.

    Anything else in the partition (a copied ``part-1.parquet``, a stray file,
    a directory where the file goes, a file where the partition's directory
    goes) is first moved to ``_quarantine/``, so the partition holds exactly
    the file written. ``count_total``, ``requests`` and ``settled`` go into the
    file's metadata with ``fetched_at`` (what the manifest is rebuilt from).
    A window too large to hold goes through :class:`PartitionWriter` instead.

    Returns the key of the file written, or None for an empty window (whose old
    file, if any, is removed).
    """
    _check_rows(frame, sms_type)
    store = open_store(lake)
    facts = _facts(sms_type, day, fetched_at, frame.height if count_total is None else count_total)
    return _replace(
        store,
        sms_type,
        day,
        [_to_arrow(frame.select(_FILE_COLUMNS))] if frame.height else [],
        {**facts, "requests": str(requests), "settled": _settled(day, fetched_at, settled)},
    )


class PartitionWriter:
    """Stream one window's rows into its partition file; nothing is visible before commit.

    :meth:`write` sorts each batch by ``order``. The first batch is held: a
    window of one batch (the usual day) goes from memory to its file, as
    :func:`write_partition` writes it. From the second batch on, every batch is
    appended to a hidden spill file as its own row groups (a sorted run), so
    memory holds one batch, never the window. :meth:`commit` copies the runs, in the order they were
    written, into the partition's file through :meth:`LakeStore.writer` (a
    hidden temporary file renamed, or one upload), holding one row group of
    :data:`ROW_GROUP_ROWS` rows at a time.

    The file is therefore sorted by ``order`` within each batch, not across
    batches: a window written in one batch (up to
    :data:`~esms_analytics.windows.DECODE_BATCH_ROWS` rows, the usual day) is
    sorted whole, as :func:`write_partition` writes a frame sorted by
    ``order``, and the same batches give the same file. A global sort of a
    larger window would need the window in memory or a merge whose memory grows
    with the day (about 300 MiB more at a million rows, BENCHMARKS.md).
    :meth:`discard` (or leaving the ``with`` block) removes the spill.

    The spill lies in the lake's folder on disk (the volume chosen for the
    data; ``clear_litter`` removes it if the process dies) and in the system's
    temporary folder for an object store (``TMPDIR``).
    """

    def __init__(
        self,
        lake: LakeLocation,
        sms_type: int,
        day: date,
        *,
        order: Sequence[str],
        privacy: PrivacyPolicy | None = None,
    ):
        self.store = open_store(lake)
        self.sms_type, self.day, self.order = sms_type, day, list(order)
        #: The lake's policy: a pseudonymised one turns each batch into its rows on write.
        self.privacy = privacy or PrivacyPolicy(RAW)
        #: Rows written so far.
        self.rows = 0
        self._path: Path | None = None
        self._spill: pq.ParquetWriter | None = None
        #: The first batch, until a second one comes: a one-batch window needs no spill.
        self._held: pa.Table | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    def write(self, frame: pl.DataFrame) -> None:
        """Take ``frame`` (:data:`~esms_analytics.SCHEMA`) as a sorted run: held if first, else spilled.

        A pseudonymised lake's batch is sorted first (by the raw columns, as a raw
        lake's), then pseudonymised: no phone or text reaches the spill.
        """
        _check_rows(frame, self.sms_type)
        if not frame.height:
            return
        rows = self.privacy.pseudonymise(frame.sort(self.order, nulls_last=True))
        table = _to_arrow(rows.select(_file_columns(self.privacy.pseudonymised)))
        with self._lock:
            self.rows += table.num_rows
            if self._spill is None and self._held is None:
                self._held = table
                return
            if self._spill is None:
                self._path = _spill_path(self.store)
                # Read back once, soon: fast compression over small files.
                self._spill = pq.ParquetWriter(self._path, table.schema, compression="lz4")
            if self._held is not None:
                self._spill.write_table(self._held, row_group_size=SPILL_GROUP_ROWS)
                self._held = None
            self._spill.write_table(table, row_group_size=SPILL_GROUP_ROWS)

    def commit(
        self, *, fetched_at: datetime, count_total: int, requests: int, settled: bool | None
    ) -> str | None:
        """Replace the partition with the rows written, as :func:`write_partition` does."""
        with self._lock:
            try:
                if self._spill is not None:
                    self._spill.close()
                facts = _facts(self.sms_type, self.day, fetched_at, count_total, self.privacy)
                facts |= {
                    "requests": str(requests),
                    "settled": _settled(self.day, fetched_at, settled),
                }
                if self._path is not None:
                    tables: Iterator[pa.Table] = _spilled(self._path)
                else:
                    tables = iter([self._held] if self._held is not None else [])
                return _replace(self.store, self.sms_type, self.day, tables, facts)
            finally:
                self._remove_spill()

    def stage(self, path: Path) -> int:
        """Write the rows to the local Parquet file ``path`` as a table's rows; their count.

        For a table lake (:mod:`esms_analytics.tables`): the window waits there for
        the sync's one commit, in :func:`table_schema_of` the lake's policy (the
        rows were pseudonymised by :meth:`write`). The spill is removed, as
        :meth:`commit` does.
        """
        from esms_analytics.tables import to_table_rows

        schema = table_schema_of(self.privacy)
        with self._lock:
            try:
                if self._spill is not None:
                    self._spill.close()
                if self._path is not None:
                    tables: Iterator[pa.Table] = _spilled(self._path)
                else:
                    tables = iter([self._held] if self._held is not None else [])
                rows = 0
                with (
                    open_file(path) as file,
                    pq.ParquetWriter(file, schema, compression="lz4") as staged,
                ):
                    for table in tables:
                        rows += table.num_rows
                        staged.write_table(to_table_rows(table, self.sms_type, self.day, schema))
                return rows
            finally:
                self._remove_spill()

    def discard(self) -> None:
        """Forget the rows written and remove the spill; safe to call again, from any thread."""
        with self._lock:
            self._remove_spill()

    def _remove_spill(self) -> None:
        spill, path = self._spill, self._path
        self._spill = self._path = self._held = None
        self.rows = 0
        try:
            if spill is not None:
                with contextlib.suppress(OSError):
                    spill.close()
        finally:
            if path is not None:
                path.unlink(missing_ok=True)


#: Rows of one row group of a spill: what the commit reads at a time.
SPILL_GROUP_ROWS: Final = 1024


def _spilled(path: Path) -> Iterator[pa.Table]:
    """Yield the spill's row groups as they were written: its runs, in arrival order.

    Read by pyarrow one row group at a time, with the schema they were written
    with: no Polars frame and no sort between the spill and the data file.
    """
    with pq.ParquetFile(path) as spill:
        for group in range(spill.num_row_groups):
            yield spill.read_row_group(group, use_threads=False)


def _spill_path(store: LakeStore) -> Path:
    # Hidden and ending in .tmp: skipped by every reader, removed by clear_litter.
    folder = store.uri("") if store.is_local else None
    if folder is not None:
        make_folders(Path(folder))
    # mkstemp's 0600 (owner only), whatever the umask: stricter than the lake's 0640.
    descriptor, name = tempfile.mkstemp(prefix=".spill-", suffix=".tmp", dir=folder)
    os.close(descriptor)
    return Path(name)


def newer_schema(found: object) -> bool:
    """Tell whether a ``schema_version`` read from a lake is newer than :data:`SCHEMA_VERSION`."""
    try:
        return int(str(found)) > int(SCHEMA_VERSION)
    except ValueError:
        return False  # absent (None) or not a number: an older or damaged lake, not a newer one


def newer_lake_warning(store: LakeStore, found: str) -> str:
    """Say in one line that a lake is newer than this reader (logged when it reads one)."""
    return (
        f"lake {store.location}: schema_version {found} is newer than esms-analytics "
        f"{__version__} knows ({SCHEMA_VERSION}); reading it anyway, writing to it is refused: "
        "upgrade esms-analytics"
    )


def _check_rows(frame: pl.DataFrame, sms_type: int) -> None:
    if frame.schema != SCHEMA:
        raise ConfigError("write_partition takes a frame with exactly esms_analytics.SCHEMA")
    other_types = frame.filter(pl.col("sms_type") != sms_type)["sms_type"].unique().to_list()
    if other_types:
        raise ConfigError(
            f"rows of SmsType {other_types} cannot go to the sms_type={sms_type} partition"
        )


def _facts(
    sms_type: int,
    day: date,
    fetched_at: datetime,
    count_total: int,
    privacy: PrivacyPolicy | None = None,
) -> dict[str, str]:
    return {
        "schema_version": SCHEMA_VERSION,
        "writer_version": __version__,
        "sms_type": str(sms_type),
        "date": day.isoformat(),
        "fetched_at": fetched_at.isoformat(),
        "count_total": str(count_total),
        **(privacy or PrivacyPolicy(RAW)).facts(),
    }


def _settled(day: date, fetched_at: datetime, settled: bool | None) -> str:
    return json.dumps(is_settled(day, fetched_at) if settled is None else settled)


def _replace(
    store: LakeStore,
    sms_type: int,
    day: date,
    rows: Iterable[pa.Table],
    facts: Mapping[str, str],
) -> str | None:
    """Replace the partition's file with ``rows`` (file columns, in order), in row groups."""
    target = data_key(sms_type, day)
    quarantine_foreign(store, sms_type, day)
    tables = _row_groups(rows)
    first = next(tables, None)
    if first is None:
        store.delete(target)
        return None
    schema = first.schema.with_metadata(
        {
            **(first.schema.metadata or {}),
            **{f"{_META}{name}".encode(): value.encode() for name, value in facts.items()},
        }
    )
    with store.writer(target) as file:
        _write_parquet(itertools.chain([first], tables), schema, file)
    return target


def _row_groups(tables: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """Regroup ``tables`` into tables of :data:`ROW_GROUP_ROWS` rows, the last one shorter."""
    held: list[pa.Table] = []
    rows = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        while rows >= ROW_GROUP_ROWS:
            # Chunked, not combined: the writer takes the chunks as one row group, and
            # the rest (a slice) keeps alive only the chunks it covers.
            whole = pa.concat_tables(held)
            yield whole.slice(0, ROW_GROUP_ROWS)
            held, rows = [whole.slice(ROW_GROUP_ROWS)], rows - ROW_GROUP_ROWS
    if rows:
        yield pa.concat_tables(held)


#: Columns Parquet dictionary-encodes: the labels (their Enum categories come back from
#: the dictionaries) and the few-valued strings. Against dictionaries on every column,
#: measured on generated days: about 16% less encode CPU and 10-12% smaller files.
DICTIONARY_COLUMNS: Final = (
    "carrier",
    "sms_type_label",
    "send_status_label",
    "send_result_label",
    "encoding",
    "campaign",
)


def _write_parquet(tables: Iterable[pa.Table], schema: pa.Schema, file: Any) -> None:
    """Write ``tables`` as the row groups of one data file (the seam a full-disk test breaks)."""
    pool = pa.default_memory_pool()
    with pq.ParquetWriter(
        file,
        schema,
        compression="zstd",
        write_statistics=True,
        use_dictionary=list(DICTIONARY_COLUMNS),
        coerce_timestamps="us",
    ) as writer:
        for number, table in enumerate(tables):
            if number:
                # The allocator keeps what the last row group's encoding freed: give it
                # back, so a large window's file costs one row group of memory, not
                # several. Not after the last: a one-group file (the usual day) would pay
                # about a third of its encoding's CPU for nothing.
                pool.release_unused()
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def pseudonymise_file(
    source: LakeStore, file: PartitionFile, destination: LakeStore, privacy: PrivacyPolicy
) -> Footer:
    """Write the pseudonymised copy of a raw lake's data file into ``destination``.

    One row group at a time: read from ``source``, pseudonymised as a sync's
    batch is (:meth:`~esms_analytics.privacy.policy.PrivacyPolicy.pseudonymise`),
    written to the same partition of ``destination`` in the same order, with the
    file's facts (``fetched_at``, ``count_total``, ``requests``, ``settled``) and
    ``privacy``'s. ``source`` is only read. Returns the source file's footer.

    Raises :class:`CorruptPartitionError` naming a source file that cannot be
    read or is not a raw lake's, before anything of it is visible in ``destination``.
    """
    footer = read_footer(source, file)
    problem = footer.problem(file)
    if problem is None and footer.facts.get("privacy", RAW) != RAW:
        problem = f"it holds {footer.facts['privacy']} rows, not raw ones"
    try:
        fetched_at = datetime.fromisoformat(footer.facts["fetched_at"])
        count = int(footer.facts.get("count_total", footer.rows))
    except (KeyError, ValueError):
        problem = problem or "its metadata records no fetch time or count"
    if problem is not None:
        raise corrupt(source, file, problem)
    facts = {
        **footer.facts,
        **_facts(file.sms_type, file.date, fetched_at, count, privacy),
        "settled": footer.facts.get("settled", _settled(file.date, fetched_at, None)),
    }
    columns = _file_columns(pseudonymised=True)

    def batches() -> Iterator[pa.Table]:
        try:
            with source.open_read(file.key) as handle:
                parquet = pq.ParquetFile(handle)
                for group in range(parquet.num_row_groups):
                    rows = pl.DataFrame(parquet.read_row_group(group, use_threads=False))
                    rows = rows.with_columns(sms_type=pl.lit(file.sms_type)).select(list(SCHEMA))
                    yield _to_arrow(privacy.pseudonymise(rows.cast(SCHEMA)).select(columns))
        except (OSError, pa.ArrowException, pl.exceptions.PolarsError) as exc:
            raise corrupt(source, file, f"a page cannot be read: {exc}") from exc

    _replace(destination, file.sms_type, file.date, batches(), facts)
    return footer


def quarantine_foreign(store: LakeStore, sms_type: int, day: date) -> list[str]:
    """Move everything but the data file out of a partition, into ``_quarantine/``.

    Call it holding the lock. Returns the keys moved (each is logged).
    """
    directory = partition_key(sms_type, day)
    target = f"{directory}/{PART_NAME}"
    foreign = [directory] if store.head(directory) is not None else []
    foreign += [
        info.key
        for info in store.list_files(f"{directory}/")
        if info.key != target and not _is_hidden(info.key.removeprefix(f"{directory}/"))
    ]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for key in foreign:
        destination = f"{QUARANTINE_DIR}/{stamp}/{key}"
        store.move(key, destination)
        logger.warning(
            "lake %s: %s is not the partition's data file; moved to %s",
            store.location,
            key,
            destination,
        )
    return foreign


def _is_hidden(relative_key: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative_key.split("/"))


def is_settled(day: date, fetched_at: datetime) -> bool:
    """Tell whether a fetch was final by sync's default rule: three days after the day ended."""
    end = datetime(day.year, day.month, day.day, tzinfo=VN_TZ) + timedelta(days=1)
    return fetched_at >= end + timedelta(days=_REBUILD_SETTLE_DAYS)


def _to_arrow(frame: pl.DataFrame) -> pa.Table:
    # Labels stay Arrow dictionaries of plain strings: in Parquet they are ordinary
    # dictionary-encoded strings that every engine reads, while the Enum categories
    # Polars records in the field metadata let read_lake take them back as Enums
    # without converting every row. Large strings become strings, which all read.
    table = frame.to_arrow()
    fields = []
    for field_ in table.schema:
        kind = field_.type
        if pa.types.is_dictionary(kind):
            kind = pa.dictionary(kind.index_type, pa.string(), kind.ordered)
        elif pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(pa.field(field_.name, kind, nullable=True, metadata=field_.metadata))
    return table.cast(pa.schema(fields))


def _file_columns(pseudonymised: bool) -> list[str]:
    return _PSEUDONYMISED_FILE_COLUMNS if pseudonymised else _FILE_COLUMNS


@functools.cache
def file_schema(pseudonymised: bool = False) -> list[tuple[str, pa.DataType]]:
    """Return the columns and Arrow types a data file reads back with (what checks expect).

    ``pseudonymised`` gives a pseudonymised lake's (README "Personal data").
    """
    # An empty file written the same way: Parquet gives dictionaries back with int32
    # indices, whatever Polars wrote. The writer class, not write_table, so that a test
    # standing in for the data writer (a full disk) does not reach this.
    schema = PSEUDONYMISED_SCHEMA if pseudonymised else SCHEMA
    table = _to_arrow(pl.DataFrame(schema=schema).select(_file_columns(pseudonymised)))
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, table.schema, compression="zstd") as writer:
        writer.write_table(table)
    buffer.seek(0)
    return [(column.name, column.type) for column in pq.read_schema(buffer)]


# -- the lock -----------------------------------------------------------------


@contextlib.contextmanager
def lake_lock(lake: LakeLocation) -> Iterator[LakeStore]:
    """Hold the lake's sync lock, or raise :class:`LakeLockedError` at once.

    On disk an ``flock`` on the lake directory (the kernel releases it however
    its holder dies); in an object store a leased lock object (see
    :mod:`esms_analytics.store`).
    """
    store = open_store(lake)
    with store.lock():
        yield store


def discard_unused_lake(store: LakeStore) -> bool:
    """Remove a local lake holding nothing but the lock and empty folders; True if removed.

    For a first sync that stored nothing: it leaves no lake behind. Call it
    holding the lock (removing the locked directory is safe: the kernel lock goes
    with the descriptor). Anything else in the folder keeps it; a bucket is left alone.
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


# -- listing ------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionFile:
    """One data file of the lake, with the partition its path names."""

    sms_type: int
    date: date
    key: str
    size: int


@dataclass(frozen=True)
class Inventory:
    """What a listing found under ``sms/``: the data files, and every foreign object."""

    files: list[PartitionFile] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


def lake_inventory(
    lake: LakeLocation,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
) -> Inventory:
    """List the lake's data files and foreign objects, pruned by type and day from keys alone.

    With ``sms_types``, only those types are listed, each from its first day
    asked for on (a listing that starts after a key), so reading a week of a
    years-old lake never lists the whole lake; without, the whole ``sms/``
    tree is listed, and objects outside any type's folder are found too.
    """
    store = open_store(lake)
    found = Inventory()
    if sms_types is None and start is None:
        listings: Iterable[list[ObjectInfo]] = [store.list_files(f"{DATA_DIR}/")]
    else:
        types = sms_types or [
            int(name.removeprefix("sms_type="))
            for name in store.list_dirs(f"{DATA_DIR}/")
            if name.startswith("sms_type=") and name.removeprefix("sms_type=").isdigit()
        ]
        listings = (
            store.list_files(
                f"{DATA_DIR}/sms_type={sms_type}/",
                start_after=f"{DATA_DIR}/sms_type={sms_type}/date={start}" if start else None,
            )
            for sms_type in sorted(set(types))
        )
    for infos in listings:
        for info in infos:
            relative = info.key.removeprefix(f"{DATA_DIR}/")
            parsed = _parse_key(info)
            if parsed is None:
                if not _is_hidden(relative):
                    found.foreign.append(info.key)
                continue
            if (start is None or parsed.date >= start) and (end is None or parsed.date <= end):
                found.files.append(parsed)
    return found


def partition_files(
    lake: LakeLocation,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
) -> list[PartitionFile]:
    """List the data files of the lake, pruned by type and day (see :func:`lake_inventory`)."""
    return lake_inventory(lake, start=start, end=end, sms_types=sms_types).files


def _parse_key(info: ObjectInfo) -> PartitionFile | None:
    """Parse ``sms/sms_type=N/date=D/part-0.parquet``; None for any other key."""
    parts = info.key.split("/")
    if len(parts) != 4 or parts[0] != DATA_DIR or parts[3] != PART_NAME:
        return None
    type_text, day_text = parts[1].removeprefix("sms_type="), parts[2].removeprefix("date=")
    if type_text == parts[1] or day_text == parts[2] or not type_text.isdigit():
        return None
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        return None
    if day.isoformat() != day_text:
        return None  # 20261120 parses too, but is not how the lake names a day
    return PartitionFile(int(type_text), day, info.key, info.size)


def map_files(store: LakeStore, function: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
    """Apply ``function`` to each item: in order on disk, side by side over a network."""
    if store.is_local or len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="esms-lake") as pool:
        return list(pool.map(function, items))


# -- footers ------------------------------------------------------------------


@dataclass(frozen=True)
class Footer:
    """What a data file's footer says: rows, whether its columns are right, its facts."""

    rows: int
    schema_ok: bool
    facts: dict[str, str]
    metadata: pq.FileMetaData

    def problem(self, file: PartitionFile) -> str | None:
        """Describe what is wrong with the file from its footer alone, or None."""
        if not self.schema_ok:
            return "wrong_schema"
        if self.facts.get("sms_type") != str(file.sms_type) or self.facts.get("date") != str(
            file.date
        ):
            return "wrong_partition"
        return None


def read_footer(store: LakeStore, file: PartitionFile) -> Footer:
    """Parse a data file's footer, or raise :class:`CorruptPartitionError`."""
    try:
        with store.open_read(file.key) as handle:
            metadata = pq.read_metadata(handle)
    except (OSError, pa.ArrowException) as exc:
        raise corrupt(store, file, str(exc)) from exc
    schema = metadata.schema.to_arrow_schema()
    raw = schema.metadata or {}
    facts = {
        key.decode()[len(_META) :]: value.decode("utf-8", "replace")
        for key, value in raw.items()
        if key.startswith(_META.encode())
    }
    columns = [(column.name, column.type) for column in schema]
    # A file names its own policy: its columns must be that policy's.
    expected = file_schema(facts.get("privacy") == PSEUDONYMISED)
    return Footer(metadata.num_rows, columns == expected, facts, metadata)


def corrupt(store: LakeStore, file: PartitionFile, problem: str) -> CorruptPartitionError:
    """Build the error for a data file that cannot be read."""
    # Readers' messages span lines and quote the bytes they choked on: keep one line.
    printable = "".join(character if character.isprintable() else " " for character in problem)
    return CorruptPartitionError(
        lake=store.location,
        partition=store.uri(file.key),
        sms_type=file.sms_type,
        day=file.date.isoformat(),
        problem=" ".join(printable.split())[:300],
    )


def check_file(store: LakeStore, file: PartitionFile, *, pages: bool = False) -> int:
    """Check a data file as a scan reads it; its row count, or :class:`CorruptPartitionError`.

    The footer must parse and name the lake's columns (what ``lake info`` reads);
    with ``pages``, every row group must decode too (damage that leaves the
    footer whole shows only there).
    """
    footer = read_footer(store, file)
    if not footer.schema_ok:
        columns = ", ".join(footer.metadata.schema.names)
        raise corrupt(store, file, f"its columns are not the lake's: {columns}")
    if pages:
        try:
            with store.open_read(file.key) as handle:
                parquet = pq.ParquetFile(handle)
                for group in range(parquet.num_row_groups):
                    parquet.read_row_group(group)
        except (OSError, pa.ArrowException) as exc:
            raise corrupt(store, file, f"a page cannot be read: {exc}") from exc
    return footer.rows


def find_damaged(store: LakeStore, files: Sequence[PartitionFile]) -> CorruptPartitionError | None:
    """Return the error naming the first of ``files`` a scan cannot read, or None.

    Footers first (a file cut short, not Parquet, other columns: a request or
    two each), then every page; only after a scan failed, never before one.
    """

    def problem(file: PartitionFile, pages: bool) -> CorruptPartitionError | None:
        try:
            check_file(store, file, pages=pages)
        except CorruptPartitionError as exc:
            return exc
        return None

    for pages in (False, True):
        found = map_files(store, functools.partial(problem, pages=pages), files)
        damaged = next((error for error in found if error is not None), None)
        if damaged is not None:
            return damaged
    return None


# -- reading ------------------------------------------------------------------


def read_lake(
    lake: LakeLocation,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    storage_options: Mapping[str, str] | None = None,
    version: int | None = None,
) -> pl.LazyFrame:
    """Scan the lake as one LazyFrame: the canonical schema plus the partition ``date``.

    A pseudonymised lake (README "Personal data") is read with its own columns,
    :data:`PSEUDONYMISED_LAKE_SCHEMA`: the scan's own schema (its files have
    ``phone_token``) or, with no file in the range, the manifest says which.

    ``lake`` is a directory, an object-store URL (``s3://bucket/prefix``...) or
    a :class:`~esms_analytics.store.LakeStore`; ``storage_options`` add to the
    cloud's standard environment. ``start``/``end`` (creation days, inclusive:
    dates, datetimes or ISO strings) and ``sms_types`` (codes or labels, one or
    several) prune whole partitions from their keys before anything is
    read; every other filter and the column selection are pushed down to the
    Parquet scan (Polars reads object stores directly). Only each partition's
    ``part-0.parquet`` is read; other objects found are logged as not read.
    Nothing is read before the scan (a listing, no request per file): a
    damaged file fails the scan itself, and a scan collected inside
    :func:`reading_lake` then raises :class:`CorruptPartitionError` naming it.

    A Delta or Iceberg lake (:mod:`esms_analytics.tables`) is read from its
    table, at its latest version or at ``version`` (time travel; a Hive lake
    has no versions and refuses one).

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
    first, last = date_bounds(start, end)
    codes = sms_type_codes(sms_types)
    store = open_lake(lake, create=False, storage_options=storage_options)
    # A Hive lake's listing finds its files: only a lake without any asks for its table
    # marker (one request a Hive report would otherwise pay on every read).
    found = lake_inventory(store, start=first, end=last, sms_types=codes)
    table = _open_table(store, version) if version is not None or not found.files else None
    if table is not None:
        if not table.exists():
            return pl.LazyFrame(schema=_lake_schema(store))
        rows: pl.LazyFrame = table.read(version=version, start=first, end=last, sms_types=codes)
        schema = _scan_schema(rows)  # the table's own columns: a pseudonymised one's differ
        return rows.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]
    if found.foreign:
        logger.warning(
            "lake %s: %d objects in the partitions are not data and are not read (%s); "
            "`esms-analytics lake check` lists them",
            store.location,
            len(found.foreign),
            found.foreign[0],
        )
    scanned = _SCANNED.get()
    if scanned is not None:
        scanned.append((store, found.files))
    if not found.files:
        return pl.LazyFrame(schema=_lake_schema(store))
    scan = pl.scan_parquet(
        [store.uri(file.key) for file in found.files],
        hive_partitioning=True,
        hive_schema=dict(PARTITION_SCHEMA),
        storage_options=store.storage_options,
    )
    schema = _scan_schema(scan)
    return scan.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]


def lake_privacy(store: LakeStore) -> str:
    """Return the policy a lake's manifest records: ``raw`` or ``pseudonymised``.

    A lake that records none (written before policies existed) is ``raw``; a
    damaged manifest says nothing here (the sync reports it).
    """
    try:
        text = store.read(MANIFEST_NAME)
        data = json.loads(text.decode("utf-8")) if text is not None else {}
    except (OSError, ValueError):
        return RAW
    found = data.get("privacy") if isinstance(data, dict) else None
    return PSEUDONYMISED if found == PSEUDONYMISED else RAW


def table_schema_of(privacy: PrivacyPolicy) -> pa.Schema:
    """Return the Arrow schema of a table lake's rows under ``privacy`` (:mod:`esms_analytics.tables`)."""
    from esms_analytics.tables import table_schema

    return table_schema(PSEUDONYMISED_LAKE_SCHEMA if privacy.pseudonymised else LAKE_SCHEMA)


def _lake_schema(store: LakeStore) -> pl.Schema:
    """Return the schema of a range with no file: the manifest says the lake's policy."""
    return PSEUDONYMISED_LAKE_SCHEMA if lake_privacy(store) == PSEUDONYMISED else LAKE_SCHEMA


def _scan_schema(scan: pl.LazyFrame) -> pl.Schema:
    """Return the schema to read a scan with: a pseudonymised lake's files have ``phone_token``.

    Polars reads the first file's footer to plan the scan anyway, and keeps what it
    read for the collect: no request more. A footer it cannot read says nothing here;
    the collect fails on it, inside :func:`reading_lake`, as it did before.
    """
    try:
        names = scan.collect_schema().names()
    except pl.exceptions.PolarsError:
        return LAKE_SCHEMA
    return PSEUDONYMISED_LAKE_SCHEMA if "phone_token" in names else LAKE_SCHEMA


def _open_table(store: LakeStore, version: int | None) -> Any:
    """Return the lake's table (Delta, Iceberg), or None for a Hive lake (which has no versions)."""
    from esms_analytics.tables import open_table

    table = open_table(store)
    if table is None and version is not None:
        raise ConfigError(
            f"the lake {store.location} is a Hive lake: it keeps no versions (version={version}); "
            "only Delta and Iceberg lakes travel in time"
        )
    return table


@contextlib.contextmanager
def reading_lake(
    lake: LakeLocation, storage_options: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Turn a scan that fails on a damaged file inside the block into a :class:`LakeError`.

    Polars says what was wrong, not in which file: only then are the files the
    block's :func:`read_lake` calls listed (or, for a frame made before the
    block, the whole lake's) checked, footers first, and the damaged one named
    in a :class:`CorruptPartitionError` with the command that repairs it.
    """
    scanned: list[tuple[LakeStore, list[PartitionFile]]] = []
    token = _SCANNED.set(scanned)
    try:
        yield
    except Exception as exc:
        polars_error = _polars_error(exc)
        if polars_error is None:
            raise
        damaged = _locate_damage(lake, storage_options, scanned)
        if damaged is not None:
            # Chained to what the reader said of that file; Polars' error stays the context.
            raise damaged from damaged.__cause__
        text = str(polars_error).strip()
        first_line = text.splitlines()[0] if text else type(polars_error).__name__
        where = lake.location if isinstance(lake, LakeStore) else str(lake)
        raise LakeError(
            f"a file of the lake {where} cannot be read ({first_line[:300]}); run "
            f"`esms-analytics lake check --lake {where}` to name every damaged file, then "
            "`esms-analytics sync --refresh` of its day to repair it",
            lake=where,
        ) from exc
    finally:
        _SCANNED.reset(token)


def _polars_error(exc: BaseException) -> BaseException | None:
    """Return the Polars error ``exc`` is or wraps, or None for any other error."""
    # The reports run through Narwhals, which rewraps Polars' errors: read the cause too.
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, pl.exceptions.PolarsError):
            return error
    if type(exc).__module__.startswith("narwhals"):
        return exc  # Narwhals' ComputeError carries Polars' message
    return None


def _locate_damage(
    lake: LakeLocation,
    storage_options: Mapping[str, str] | None,
    scanned: list[tuple[LakeStore, list[PartitionFile]]],
) -> CorruptPartitionError | None:
    """Find the damaged file after a failed scan; None if none is found (or the lake is gone)."""
    try:
        if not scanned:
            store = open_lake(lake, create=False, storage_options=storage_options)
            scanned = [(store, lake_inventory(store).files)]
        for store, files in scanned:
            damaged = find_damaged(store, files)
            if damaged is not None:
                return damaged
    except LakeError:
        return None  # the store itself fails now: the scan's own message says more
    return None
