"""Table formats beside the Hive layout: one sync, one table commit.

A lake's format is chosen when it is created (``sync --table-format``) and
recorded in the lake's root, in ``_table.json`` (``{"format": "delta"}``); a lake without it
is a Hive lake (:mod:`esms_analytics.lake`), the default. A table lake keeps
everything else a Hive lake has (``_manifest.json`` and its journal, the
lock, ``_quarantine/``): only the rows live elsewhere, in a table under the
lake's folder (``delta/`` for Delta, ``iceberg/`` for Iceberg), partitioned by
``sms_type`` and ``date`` with the columns of :data:`TABLE_SCHEMA`, or of a
pseudonymised lake's (:func:`table_schema` of its read schema).

The sync verifies each window as for Hive and *stages* it
(:class:`StagedWindow`: a hidden local Parquet file of the window's rows);
when the sync ends, :meth:`TableFormat.commit` replaces the partitions of all
staged windows, the empty ones included, in one table transaction: a reader
sees the whole sync or none of it, and every earlier version stays readable
(:meth:`TableFormat.read` with ``version``).

This package imports only the floors below :mod:`esms_analytics.lake`; the
backends import ``deltalake`` or ``pyiceberg`` when a table is opened, never
with ``import esms_analytics``.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any, ClassVar, Final

import polars as pl
import pyarrow as pa

from esms_analytics.codes import ENV_ICEBERG_CATALOG_URI
from esms_analytics.decode import SCHEMA
from esms_analytics.errors import ConfigError, LakeError
from esms_analytics.files import make_folders, settle_tree
from esms_analytics.store import LakeLocation, LakeStore, open_store

HIVE: Final = "hive"
DELTA: Final = "delta"
ICEBERG: Final = "iceberg"
TABLE_FORMATS: Final = (HIVE, DELTA, ICEBERG)
#: Each table format's backend, ``module:class`` (a :class:`TableFormat` taking the store).
_BACKENDS: Final = {
    DELTA: "esms_analytics.tables.delta:DeltaFormat",
    ICEBERG: "esms_analytics.tables.iceberg:IcebergFormat",
}
#: The Iceberg catalog a user names (:mod:`esms_analytics.tables.iceberg`); the command
#: line's ``--catalog-uri`` sets it for one command.
CATALOG_URI_ENV: Final = ENV_ICEBERG_CATALOG_URI
#: The object naming a lake's table format; absent in a Hive lake.
TABLE_MARKER: Final = "_table.json"
#: The columns of a table lake, in order: :data:`esms_analytics.LAKE_SCHEMA` as Polars sees it.
POLARS_SCHEMA: Final = pl.Schema({**SCHEMA, "date": pl.Date()})
PARTITION_COLUMNS: Final = ("sms_type", "date")
#: Days named by one ``IN`` list of :func:`replace_predicate`.
PREDICATE_DAYS: Final = 500
#: What the names of a commit's facts start with (Delta custom metadata, Iceberg summary).
FACT_PREFIX: Final = "esms_analytics."


def _arrow_type(kind: pa.DataType) -> pa.DataType:
    # Tables have no dictionary type and store instants in UTC: labels are plain strings
    # (read back as their Enums), times are microseconds in UTC (read back in Vietnam's zone).
    if (
        pa.types.is_dictionary(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
    ):
        return pa.string()
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC")
    return kind


def table_schema(columns: pl.Schema = POLARS_SCHEMA) -> pa.Schema:
    """Return the Arrow schema a table stores a lake's ``columns`` (as read) in.

    The same columns in the same order, strings plain, times in UTC. The
    default is a raw lake's, :data:`TABLE_SCHEMA`; a pseudonymised lake passes
    its own (``phone_token`` and ``phone_masked`` for the phones, ``template``).
    """
    return pa.schema(
        [
            pa.field(field.name, _arrow_type(field.type))
            for field in pl.DataFrame(schema=columns).to_arrow().schema
        ]
    )


#: The Arrow schema of a raw lake's table rows: the lake's columns, strings plain, times in UTC.
TABLE_SCHEMA: Final = table_schema()


def to_table_rows(
    rows: pa.Table, sms_type: int, day: date, schema: pa.Schema = TABLE_SCHEMA
) -> pa.Table:
    """Return a partition file's rows (its columns, no ``sms_type``) as ``schema``'s."""
    count = rows.num_rows
    columns = {name: rows.column(name) for name in rows.column_names}
    columns["sms_type"] = pa.array([sms_type] * count, pa.int16())
    columns["date"] = pa.array([day] * count, pa.date32())
    return pa.table([columns[field.name].cast(field.type) for field in schema], schema=schema)


@dataclass(frozen=True)
class StagedWindow:
    """One verified window, waiting for the sync's commit.

    ``path`` is a local Parquet file of the table's rows (None for a window
    with no rows, whose partition the commit empties); the facts are the
    manifest entry's.
    """

    sms_type: int
    date: date
    path: Path | None
    rows: int
    fetched_at: datetime
    count_total: int
    requests: int
    settled: bool


@dataclass(frozen=True)
class Compacted:
    """What :meth:`TableFormat.compact` did."""

    files_removed: int
    files_added: int
    version: int | None


class TableFormat(abc.ABC):
    """A lake's rows as one table: committed a sync at a time, read at any version."""

    #: ``delta`` or ``iceberg``.
    name: ClassVar[str]
    #: The table's folder under the lake's root.
    folder: ClassVar[str]

    def __init__(self, store: LakeStore):
        self.store = store

    @property
    def uri(self) -> str:
        """The table's location: a local path or an object-store URL."""
        return self.store.uri(self.folder)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the table's local folder private around a write by its library.

        delta-rs and pyiceberg (and SQLite, for the catalog) create their files
        with the umask's modes (0644, 0666 under umask 0), which cannot be set
        file by file from here. So the folder is created 0750 before the first
        file, which keeps other users out of everything in it whatever its mode,
        and once the write ends every file under it is made 0640 and every
        folder 0750 (:mod:`esms_analytics.files`). A bucket has no modes.
        """
        if not self.store.is_local:
            yield
            return
        folder = Path(self.uri)
        make_folders(folder)
        try:
            yield
        finally:
            settle_tree(folder)

    @abc.abstractmethod
    def exists(self) -> bool:
        """Tell whether the table has had its first commit."""

    @abc.abstractmethod
    def commit(
        self,
        windows: Sequence[StagedWindow],
        *,
        schema: pa.Schema = TABLE_SCHEMA,
        facts: Mapping[str, str] | None = None,
    ) -> int:
        """Replace the partitions of ``windows`` (empty ones too) in one transaction.

        ``schema`` is the rows' (:func:`table_schema`): the table is created
        with it at its first commit. ``facts`` are recorded in the commit, each
        name under ``esms_analytics.`` (the lake's policy and its key's
        fingerprint: :meth:`lake_facts` reads them back). Returns the new
        version. A failure or a kill at any point leaves the table at its
        previous version.
        """

    @abc.abstractmethod
    def read(
        self,
        *,
        version: int | None = None,
        start: date | None = None,
        end: date | None = None,
        sms_types: Sequence[int] | None = None,
    ) -> pl.LazyFrame:
        """Scan the table (the latest version, or ``version``) with the lake's columns.

        A raw lake's are :data:`POLARS_SCHEMA`, a pseudonymised lake's its own;
        the caller casts to the lake's read schema. ``start``, ``end`` and
        ``sms_types`` prune partitions.
        """

    @abc.abstractmethod
    def version(self) -> int | None:
        """Return the current version, 0 for the first commit (Delta and Iceberg); None before one."""

    @abc.abstractmethod
    def history(self) -> list[dict[str, Any]]:
        """Return the table's commits, newest first, as the format reports them."""

    @abc.abstractmethod
    def lake_facts(self) -> dict[str, str]:
        """Return the ``facts`` of the newest commit that recorded the lake's policy; {} if none.

        Names without their ``esms_analytics.`` prefix. A manifest that was lost
        takes the lake's policy and key fingerprint from here, as a Hive lake's
        takes them from its files.
        """

    @abc.abstractmethod
    def partitions(self) -> set[tuple[int, date]]:
        """Return the (sms_type, date) partitions that hold rows in the current version."""

    @abc.abstractmethod
    def partition_bytes(self) -> dict[tuple[int, date], int]:
        """Return the partitions of :meth:`partitions`, each with its data files' bytes."""

    @abc.abstractmethod
    def compact(self, settled_before: date) -> Compacted:
        """Rewrite the small files of the days before ``settled_before`` into fewer."""

    @abc.abstractmethod
    def check(self) -> list[str]:
        """Problems found reading the table's metadata and files, one line each; [] if sound."""


def commit_facts(
    windows: Sequence[StagedWindow], facts: Mapping[str, str] | None
) -> dict[str, str]:
    """Return what a sync's commit records: its windows and rows, then the lake's ``facts``."""
    recorded = {"windows": str(len(windows)), "rows": str(sum(window.rows for window in windows))}
    return {f"{FACT_PREFIX}{name}": value for name, value in {**recorded, **(facts or {})}.items()}


def lake_facts_of(commits: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Return the facts of the first of ``commits`` (newest first) that recorded a policy."""
    for properties in commits:
        if f"{FACT_PREFIX}privacy" in properties:
            return {
                name.removeprefix(FACT_PREFIX): str(value)
                for name, value in properties.items()
                if name.startswith(FACT_PREFIX)
            }
    return {}


def prune(
    scan: pl.LazyFrame,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
) -> pl.LazyFrame:
    """Keep the rows of ``scan`` in the days and types asked: the partitions a read prunes."""
    conditions = []
    if start is not None:
        conditions.append(pl.col("date") >= start)
    if end is not None:
        conditions.append(pl.col("date") <= end)
    if sms_types is not None:
        conditions.append(pl.col("sms_type").is_in(list(sms_types)))
    return scan.filter(*conditions) if conditions else scan


def table_format_of(lake: LakeLocation) -> str:
    """Return the lake's recorded table format: ``hive`` when nothing is recorded."""
    store = open_store(lake)
    try:
        text = store.read(TABLE_MARKER)
    except IsADirectoryError:
        text = b"{}"
    if text is None:
        return HIVE
    try:
        recorded = json.loads(text.decode("utf-8")).get("format")
    except (ValueError, AttributeError):
        recorded = None
    if recorded not in TABLE_FORMATS:
        raise LakeError(
            f"{store.uri(TABLE_MARKER)} does not name a table format ({', '.join(TABLE_FORMATS)}):"
            " restore it, or remove it if the lake is a Hive lake",
            lake=store.location,
        )
    return str(recorded)


def _named(table_format: str) -> str:
    """Return the format with its article: ``a hive``, ``a delta``, ``an iceberg``."""
    return f"{'an' if table_format[0] in 'aeiou' else 'a'} {table_format}"


def _refuse_unmarked_table(store: LakeStore) -> None:
    """Refuse a lake whose table lost its marker: it is not a new Hive lake.

    Synced as one, it would add Hive files beside the table, under any policy
    and key (the table's commits record them, but only a table lake reads them).
    """
    for name, folder, log in ((DELTA, "delta", "_delta_log"), (ICEBERG, "iceberg", "metadata")):
        if store.list_files(f"{folder}/{log}/"):
            marker = json.dumps({"format": name})
            raise LakeError(
                f"the lake {store.location} holds {_named(name)} table in {folder}/ but no "
                f"{TABLE_MARKER}: restore it (its text is {marker}) before syncing again",
                lake=store.location,
            )


def check_table_format(name: str) -> str:
    """Return ``name`` if it is a table format, else raise :class:`ConfigError`."""
    if name not in TABLE_FORMATS:
        raise ConfigError(f"unknown table format {name!r}: give one of {', '.join(TABLE_FORMATS)}")
    return name


def choose_table_format(lake: LakeLocation, wanted: str | None, *, new: bool) -> str:
    """Settle the format of a sync: the lake's own, or ``wanted`` for a new lake (recorded).

    A lake that already holds data (``new`` false) keeps its format: another one
    asked for is refused. Call it holding the lake's lock.
    """
    store = open_store(lake)
    recorded = table_format_of(store)
    if recorded == HIVE and new:
        _refuse_unmarked_table(store)
    if wanted is None:
        return recorded
    check_table_format(wanted)
    if wanted == recorded:
        return recorded
    if not new or recorded != HIVE:
        raise ConfigError(
            f"the lake {store.location} is {_named(recorded)} lake; it cannot be synced as "
            f"{wanted} (a lake's format is chosen when it is created): give --table-format "
            f"{recorded}, or another --lake"
        )
    if wanted != HIVE:
        # A backend that cannot serve this lake (a missing extra, no catalog) refuses
        # before the marker makes the lake one of its format.
        open_table(store, wanted)
        store.write(TABLE_MARKER, json.dumps({"format": wanted}).encode("utf-8"))
    return wanted


def open_table(lake: LakeLocation, table_format: str | None = None) -> TableFormat | None:
    """Open the lake's table (its recorded format, or ``table_format``); None for Hive."""
    store = open_store(lake)
    name = table_format or table_format_of(store)
    if name in _BACKENDS:
        # Backends sit above this module (they import it): found by name, imported lazily.
        module, _, attribute = _BACKENDS[name].partition(":")
        backend: type[TableFormat] = getattr(importlib.import_module(module), attribute)
        return backend(store)
    check_table_format(name)
    return None


def compact_lake(lake: LakeLocation, settled_before: date) -> Compacted:
    """Compact a table lake's partitions of the days before ``settled_before``, holding its lock.

    Delta runs ``optimize.compact()``; Iceberg rewrites each partition of several
    files as one (:meth:`TableFormat.compact`). Either is one more version; every
    earlier one stays readable. A Hive lake is refused with
    :class:`~esms_analytics.errors.ConfigError`: each of its partitions is one file
    already, and coarser files would break its layout (README "The lake").
    """
    store = open_store(lake)
    table = open_table(store)
    if table is None:
        raise ConfigError(
            f"the lake {store.location} is a Hive lake: each (type, day) is one file already, "
            "so there is nothing to compact; only Delta and Iceberg lakes are compacted"
        )
    with store.lock():
        return table.compact(settled_before)


def storage_options_for(store: LakeStore) -> dict[str, str]:
    """Return the store's options for the table libraries (obstore's keys, which they share)."""
    return dict(store.storage_options or {})


def new_lake(lake: LakeLocation) -> bool:
    """Tell whether ``lake`` holds no manifest and no table yet (a sync would create it)."""
    store = open_store(lake)
    return (
        store.head("_manifest.json") is None
        and store.head(TABLE_MARKER) is None
        and not (store.list_dirs("sms/"))
    )


def replace_predicate(windows: Sequence[StagedWindow]) -> str:
    """Return the predicate naming the partitions of ``windows`` (:func:`partition_predicate`)."""
    return partition_predicate((window.sms_type, window.date) for window in windows)


def partition_predicate(partitions: Iterable[tuple[int, date]]) -> str:
    """Return a predicate naming the (sms_type, date) ``partitions``: per type, ranges and lists.

    Consecutive days go into ranges (``date >= ... AND date <= ...``) so a sync of
    years of days stays a short predicate; scattered days into ``IN`` lists of at
    most :data:`PREDICATE_DAYS`. It is the SQL that delta-rs's predicates and
    pyiceberg's row filters both parse.
    """
    terms = []
    keys = sorted(set(partitions))
    for sms_type, group in groupby(keys, key=lambda key: key[0]):
        days = [day for _, day in group]
        singles: list[date] = []
        for first, last in _runs(days):
            if (last - first).days >= 2:
                terms.append(
                    f"(sms_type = {int(sms_type)} AND date >= '{first.isoformat()}' "
                    f"AND date <= '{last.isoformat()}')"
                )
            else:
                singles.extend(first + timedelta(days=n) for n in range((last - first).days + 1))
        for start in range(0, len(singles), PREDICATE_DAYS):
            listed = ", ".join(
                f"'{day.isoformat()}'" for day in singles[start : start + PREDICATE_DAYS]
            )
            terms.append(f"(sms_type = {int(sms_type)} AND date IN ({listed}))")
    return " OR ".join(terms)


def _runs(days: Sequence[date]) -> Iterator[tuple[date, date]]:
    """Group sorted ``days`` into runs of consecutive days: (first, last) each."""
    if not days:
        return
    first = last = days[0]
    for day in days[1:]:
        if day == last + timedelta(days=1):
            last = day
            continue
        yield first, last
        first = last = day
    yield first, last
