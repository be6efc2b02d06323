"""Iceberg tables through ``pyiceberg``: ``<lake>/iceberg/``, in a SQL catalog.

One sync is one pyiceberg transaction: a delete of every staged window's
partition that holds rows (the row filter
:func:`~esms_analytics.tables.partition_predicate`, Delta's predicate; it drops
whole files, as the spec partitions by both columns), an append of the windows' rows, and a tag
``version-<n>`` on the append's snapshot. The catalog commit that swaps the
table's metadata pointer is the one atomic step: a process killed before it
leaves only files no metadata names, and the table at its previous version.

Versions mirror Delta's: ``version-0`` is the first sync's commit, ``version-1``
the next (a compaction is a version too), and :meth:`IcebergFormat.read` with
``version=n`` reads the snapshot that tag names. The delete and the append are
two snapshots of one commit; only the last one is tagged, and no reader at a
version ever sees the one in between.

Where the catalog lives:

- a local lake keeps a SQLite catalog in ``<lake>/iceberg/catalog.db``, the
  table ``esms.sms``, unless a catalog is named when the lake is created;
- a catalog the user names in ``ESMS_ICEBERG_CATALOG_URI`` (the command
  line's ``--catalog-uri``), which a lake in a bucket needs (SQLite needs a
  local file) and is refused without: a REST catalog (``https://...``), AWS
  Glue (``glue://``, or ``glue://<region>``), a Hive metastore
  (``thrift://...``) or a SQL database (any other SQLAlchemy URL:
  ``sqlite:////var/lib/esms/catalog.db``, ``postgresql+psycopg://...``); more
  properties come from pyiceberg's own ``PYICEBERG_CATALOG__ESMS__<NAME>``
  variables (a REST catalog's ``CREDENTIAL`` or ``TOKEN``). The lake's table
  there is ``esms.sms_<16 hex digits>``, a hash of the table's URL, so one
  catalog serves several lakes. A local lake made with its own catalog file
  keeps using it.

Iceberg has no 8- or 16-bit integers: ``sms_type``, ``send_status``,
``send_result`` and ``segments`` are ``int`` (32 bits) in the table and read
back in the lake's widths; ``sent_at`` is a UTC ``timestamptz``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from esms_analytics.errors import ConfigError, LakeError
from esms_analytics.files import make_folders
from esms_analytics.tables import (
    CATALOG_URI_ENV,
    ICEBERG,
    PARTITION_COLUMNS,
    POLARS_SCHEMA,
    TABLE_SCHEMA,
    Compacted,
    StagedWindow,
    TableFormat,
    commit_facts,
    lake_facts_of,
    partition_predicate,
    prune,
    storage_options_for,
)

if TYPE_CHECKING:
    from esms_analytics.store import LakeStore

CATALOG_NAME: Final = "esms"
NAMESPACE: Final = "esms"
#: The catalog file of a local lake, under the table's folder.
LOCAL_CATALOG: Final = "catalog.db"
#: The tag of each version's snapshot: ``version-0``, ``version-1``...
TAG_PREFIX: Final = "version-"
#: The store's option keys (obstore's, as Polars takes them) and pyiceberg's FileIO names.
_S3_PROPERTIES: Final = {
    "aws_endpoint_url": "s3.endpoint",
    "aws_endpoint": "s3.endpoint",
    "endpoint_url": "s3.endpoint",
    "aws_access_key_id": "s3.access-key-id",
    "access_key_id": "s3.access-key-id",
    "aws_secret_access_key": "s3.secret-access-key",
    "secret_access_key": "s3.secret-access-key",
    "aws_session_token": "s3.session-token",
    "session_token": "s3.session-token",
    "aws_region": "s3.region",
    "region": "s3.region",
}
#: The columns Iceberg widens to 32 bits, and the width the lake gives them.
_NARROW: Final = {
    field.name: POLARS_SCHEMA[field.name]
    for field in TABLE_SCHEMA
    if pa.types.is_int8(field.type) or pa.types.is_int16(field.type)
}


def _require_pyiceberg() -> None:
    """Raise one line naming the extra when pyiceberg or SQLAlchemy is not installed."""
    for module in ("pyiceberg", "sqlalchemy"):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"an Iceberg lake needs {module}, which is not installed: "
                "pip install 'esms-analytics[iceberg]'"
            )


class IcebergFormat(TableFormat):
    """A lake's rows as an Iceberg table in ``<lake>/iceberg/``."""

    name: ClassVar[str] = ICEBERG
    folder: ClassVar[str] = "iceberg"

    def __init__(self, store: LakeStore):
        super().__init__(store)
        # Checked, not imported: pyiceberg is imported when the table is first read or written.
        _require_pyiceberg()
        self._catalog_cache: Any = None
        uri = os.environ.get(CATALOG_URI_ENV, "").strip()
        #: True for a local lake's own SQLite catalog in its folder.
        self.embedded = store.is_local and (not uri or (Path(self.uri) / LOCAL_CATALOG).exists())
        if self.embedded:
            self._catalog_uri = f"sqlite:///{Path(self.uri) / LOCAL_CATALOG}"
            self._identifier = (NAMESPACE, "sms")
            return
        if not uri:
            raise ConfigError(
                f"the Iceberg lake {store.location} is in object storage, where its SQLite "
                f"catalog cannot live: set {CATALOG_URI_ENV} (or --catalog-uri) to its catalog: "
                "an https:// REST catalog, glue:// for AWS Glue, or a database's SQLAlchemy URL "
                "(a local sqlite:////path/catalog.db, or postgresql+psycopg://...)"
            )
        self._catalog_uri = uri
        digest = hashlib.sha256(self.uri.encode("utf-8")).hexdigest()[:16]
        self._identifier = (NAMESPACE, f"sms_{digest}")
        # Opened now: a catalog that cannot be is refused before the lake is marked Iceberg.
        self._catalog()

    @property
    def location(self) -> str:
        """The table's location as Iceberg writes it: a ``file://`` or bucket URL."""
        return Path(self.uri).resolve().as_uri() if self.store.is_local else self.uri

    @property
    def identifier(self) -> str:
        """The table's name in its catalog: ``esms.sms`` for a local lake."""
        return ".".join(self._identifier)

    def _properties(self) -> dict[str, str]:
        """Return pyiceberg's FileIO properties from the store's options."""
        properties = {}
        for key, value in storage_options_for(self.store).items():
            name = _S3_PROPERTIES.get(key.lower())
            if name is not None:
                properties[name] = value
        return properties

    def _catalog(self) -> Any:
        if self._catalog_cache is None:
            if self.embedded:
                from pyiceberg.catalog.sql import SqlCatalog

                make_folders(Path(self.uri))  # 0750 before SQLite makes the catalog in it
                self._catalog_cache = SqlCatalog(
                    CATALOG_NAME,
                    uri=self._catalog_uri,
                    warehouse=self.location,
                    **self._properties(),
                )
            else:
                self._catalog_cache = named_catalog(
                    self._catalog_uri, self.location, self._properties()
                )
        return self._catalog_cache

    def _catalog_present(self) -> bool:
        # Reading a local lake never creates its catalog file.
        return not self.embedded or (Path(self.uri) / LOCAL_CATALOG).exists()

    def _table(self) -> Any | None:
        """Return the pyiceberg table, or None before its first commit.

        Metadata files that the catalog does not know are a table whose catalog
        was lost or is another one: refused, never taken for an empty lake (a
        commit would start a second history over the first).
        """
        table = None
        if self._catalog_present():
            from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

            try:
                table = self._catalog().load_table(self._identifier)
            except (NoSuchTableError, NoSuchNamespaceError):
                table = None
        if table is None and self.store.list_files(f"{self.folder}/metadata/"):
            where = (
                f"its catalog {Path(self.uri) / LOCAL_CATALOG}"
                if self.embedded
                else f"the catalog of ${CATALOG_URI_ENV}"
            )
            raise LakeError(
                f"the Iceberg table {self.uri} has metadata files but {where} does not "
                f"know {self.identifier}: restore that catalog (or point ${CATALOG_URI_ENV} "
                "at the one the lake was created with), or register the newest metadata "
                "file again with pyiceberg's Catalog.register_table",
                lake=self.store.location,
            )
        return table

    def exists(self) -> bool:
        """Tell whether the table has a first commit."""
        table = self._table()
        return table is not None and table.current_snapshot() is not None

    def commit(
        self,
        windows: Sequence[StagedWindow],
        *,
        schema: pa.Schema = TABLE_SCHEMA,
        facts: Mapping[str, str] | None = None,
    ) -> int:
        """Replace the windows' partitions in one catalog commit; return the new version."""
        if not windows:
            version = self.version()
            return -1 if version is None else version
        from pyiceberg.table.update.snapshot import ManageSnapshots

        table = self._table()
        catalog = self._catalog()
        if table is None:
            # The table is created by the same commit as its first rows: a kill before it
            # leaves no table at all.
            catalog.create_namespace_if_not_exists(NAMESPACE)
            transaction = catalog.create_table_transaction(
                self._identifier,
                schema=iceberg_schema(schema),
                location=self.location,
                partition_spec=partition_spec(schema),
            )
            version = 0
        else:
            transaction = table.transaction()
            latest = _version(table)
            version = 0 if latest is None else latest + 1
        recorded = commit_facts(windows, {"version": str(version), **(facts or {})})
        # Only partitions holding rows are deleted: pyiceberg warns of a delete matching none.
        stored = self._partitions(table) & {(window.sms_type, window.date) for window in windows}
        # _writing() ends after the commit: the catalog and the new files, made 0640.
        with self._writing(), transaction as tx:
            if stored:
                tx.delete(partition_predicate(stored), snapshot_properties=recorded)
            paths = [str(window.path) for window in windows if window.path is not None]
            _append(tx, (_read_staged(path, schema) for path in paths), recorded)
            snapshot = tx.table_metadata.current_snapshot_id
            ManageSnapshots(tx).create_tag(snapshot, f"{TAG_PREFIX}{version}").commit()
        return version

    def read(
        self,
        *,
        version: int | None = None,
        start: date | None = None,
        end: date | None = None,
        sms_types: Sequence[int] | None = None,
    ) -> pl.LazyFrame:
        """Scan the table at ``version`` (default the latest), partitions pruned."""
        table = self._table()
        if table is None:
            return pl.LazyFrame(schema=POLARS_SCHEMA)
        snapshot_id = None
        if version is not None:
            snapshot = table.snapshot_by_name(f"{TAG_PREFIX}{version}")
            if snapshot is None:
                latest = _version(table)
                raise ConfigError(
                    f"the Iceberg table {self.uri} has no version {version} "
                    f"(its versions are 0 to {latest}): give one of them"
                )
            snapshot_id = snapshot.snapshot_id
        if importlib.util.find_spec("polars_iceberg") is None:
            # Without the plugin Polars plans with pyiceberg anyway, and warns on every scan
            # (a report would print it); saying so once here keeps the choice the user's.
            os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")
        scan = pl.scan_iceberg(
            table,
            snapshot_id=snapshot_id,
            storage_options=storage_options_for(self.store) or None,
        )
        scan = prune(scan, start=start, end=end, sms_types=sms_types)
        # Back to the lake's widths: Iceberg stored the small integers as 32 bits.
        names = [field.name for field in table.schema().fields]
        return scan.select(names).cast({name: _NARROW[name] for name in names if name in _NARROW})

    def version(self) -> int | None:
        """Return the table's version (the last ``version-<n>`` tag); None before a commit."""
        table = self._table()
        return None if table is None else _version(table)

    def history(self) -> list[dict[str, Any]]:
        """Return the versions, newest first: each one's snapshot and its summary."""
        table = self._table()
        if table is None:
            return []
        found = []
        for name, ref in table.metadata.refs.items():
            if not name.startswith(TAG_PREFIX) or ref.snapshot_ref_type != "tag":
                continue
            snapshot = table.snapshot_by_id(ref.snapshot_id)
            summary = snapshot.summary if snapshot is not None else None
            found.append(
                {
                    "version": int(name.removeprefix(TAG_PREFIX)),
                    "snapshot_id": ref.snapshot_id,
                    "timestamp": snapshot.timestamp_ms if snapshot is not None else None,
                    "operation": summary.operation.value if summary is not None else None,
                    **(dict(summary.additional_properties) if summary is not None else {}),
                }
            )
        return sorted(found, key=lambda entry: -int(entry["version"]))

    def lake_facts(self) -> dict[str, str]:
        """Return the policy facts of the newest snapshot that recorded them (its summary)."""
        table = self._table()
        if table is None:
            return {}
        snapshots = sorted(table.snapshots(), key=lambda snapshot: -snapshot.timestamp_ms)
        return lake_facts_of(
            dict(snapshot.summary.additional_properties)
            for snapshot in snapshots
            if snapshot.summary is not None
        )

    def partitions(self) -> set[tuple[int, date]]:
        """Return the partitions holding rows in the current snapshot."""
        return self._partitions(self._table())

    def _partitions(self, table: Any | None) -> set[tuple[int, date]]:
        return set(self._partition_bytes(table))

    def partition_bytes(self) -> dict[tuple[int, date], int]:
        """Return each partition holding rows with its data files' bytes (the snapshot's)."""
        return self._partition_bytes(self._table())

    def _partition_bytes(self, table: Any | None) -> dict[tuple[int, date], int]:
        if table is None or table.current_snapshot() is None:
            return {}
        stats = table.inspect.partitions()
        found = zip(
            stats.column("partition").to_pylist(),
            stats.column("record_count").to_pylist(),
            stats.column("total_data_file_size_in_bytes").to_pylist(),
            strict=True,
        )
        return {
            (int(partition["sms_type"]), _day(partition["date"])): int(size)
            for partition, rows, size in found
            if rows
        }

    def compact(self, settled_before: date) -> Compacted:
        """Rewrite each settled partition of several files as one, in one version.

        pyiceberg has no ``rewrite_data_files`` yet: the partitions before
        ``settled_before`` holding more than one data file are deleted and their
        own rows appended again, in one transaction tagged as the next version.
        """
        table = self._table()
        if table is None or table.current_snapshot() is None:
            return Compacted(0, 0, None)
        from pyiceberg.table.update.snapshot import ManageSnapshots

        stats = table.inspect.partitions()
        keys = [
            (int(partition["sms_type"]), _day(partition["date"]), int(files))
            for partition, files in zip(
                stats.column("partition").to_pylist(),
                stats.column("file_count").to_pylist(),
                strict=True,
            )
        ]
        chosen = sorted(
            (kind, day) for kind, day, files in keys if files > 1 and day < settled_before
        )
        removed = sum(files for kind, day, files in keys if (kind, day) in set(chosen))
        if not chosen:
            return Compacted(0, 0, _version(table))
        latest = _version(table)
        version = 0 if latest is None else latest + 1
        facts = {
            "esms_analytics.version": str(version),
            "esms_analytics.compacted": str(len(chosen)),
        }
        # Each partition's rows are read from the snapshot before this transaction's delete.
        parts = (
            table.scan(row_filter=partition_predicate([(kind, day)])).to_arrow()
            for kind, day in chosen
        )
        with self._writing(), table.transaction() as tx:
            written = _write(tx, parts)
            tx.delete(partition_predicate(chosen), snapshot_properties=facts)
            with tx.update_snapshot(snapshot_properties=facts).fast_append() as append:
                for data_file in written:
                    append.append_data_file(data_file)
            snapshot = tx.table_metadata.current_snapshot_id
            ManageSnapshots(tx).create_tag(snapshot, f"{TAG_PREFIX}{version}").commit()
        return Compacted(removed, len(written), version)

    def check(self) -> list[str]:
        """Name each damaged metadata file, then each data file the table names but is gone."""
        problems = []
        for info in self.store.list_files(f"{self.folder}/metadata/"):
            if not info.key.endswith(".metadata.json"):
                continue
            try:
                json.loads((self.store.read(info.key) or b"").decode("utf-8"))
            except ValueError as exc:
                problems.append(
                    f"damaged metadata file {self.store.uri(info.key)} ({str(exc)[:120]}): "
                    "the versions it records cannot be read; restore it from a backup"
                )
        if problems:
            return problems
        try:
            table = self._table()
            tasks = (
                list(table.scan().plan_files())
                if table is not None and table.current_snapshot()
                else []
            )
        except LakeError as exc:
            return [str(exc)]
        except Exception as exc:  # pyiceberg, SQLAlchemy and the FileIO raise their own kinds
            return [
                f"the Iceberg table {self.uri} cannot be opened: {str(exc).splitlines()[0][:200]}"
            ]
        root = self.location.rstrip("/") + "/"
        for task in tasks:
            path = task.file.file_path
            if not path.startswith(root):
                problems.append(f"the Iceberg table {self.uri} names a file outside it: {path}")
                continue
            key = f"{self.folder}/{path.removeprefix(root)}"
            if self.store.head(key) is None:
                problems.append(f"the Iceberg table {self.uri} names a missing data file {path}")
        return problems


def named_catalog(uri: str, warehouse: str, properties: Mapping[str, str]) -> Any:
    """Open the catalog ``uri`` names: REST, AWS Glue, a Hive metastore or a SQL database.

    ``http(s)://`` is a REST catalog, ``glue://`` (or ``glue://<region>``) AWS
    Glue, ``thrift://`` a Hive metastore; any other URL is a SQLAlchemy
    database URL. pyiceberg adds the properties of its
    ``PYICEBERG_CATALOG__ESMS__*`` variables. A catalog that cannot be opened
    raises :class:`ConfigError` in one line that never shows the URL (it may
    hold a database password).
    """
    from pyiceberg.catalog import load_catalog

    scheme, _, rest = uri.partition("://")
    kind = scheme.lower()
    try:
        if kind in ("http", "https"):
            return load_catalog(CATALOG_NAME, type="rest", uri=uri, **properties)
        if kind == "glue":
            region = {"glue.region": rest.strip("/")} if rest.strip("/") else {}
            return load_catalog(CATALOG_NAME, type="glue", **region, **properties)
        if kind == "thrift":
            return load_catalog(CATALOG_NAME, type="hive", uri=uri, **properties)
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **properties)
    except Exception as exc:  # pyiceberg, SQLAlchemy, boto3 and requests raise their own kinds
        detail = (str(exc).splitlines() or [type(exc).__name__])[0].replace(uri, "<the URL>")
        password = _password(uri)
        if password:
            detail = detail.replace(password, "***")
        raise ConfigError(
            f"${CATALOG_URI_ENV} names a catalog that cannot be opened ({detail[:160]}): give "
            "an https:// REST catalog, glue:// for AWS Glue, thrift:// for a Hive metastore or "
            "a SQLAlchemy URL (sqlite:////path/catalog.db, postgresql+psycopg://...)"
        ) from None


def _password(uri: str) -> str | None:
    """Return the password a URL holds (``scheme://user:password@host``), if any."""
    try:
        return urllib.parse.urlsplit(uri).password
    except ValueError:
        return None


def iceberg_schema(schema: pa.Schema = TABLE_SCHEMA) -> Any:
    """Return ``schema`` (a table's rows) as an Iceberg schema (small integers widened to 32 bits)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import (
        BooleanType,
        DateType,
        DoubleType,
        IntegerType,
        LongType,
        NestedField,
        StringType,
        TimestamptzType,
    )

    def kind(arrow: pa.DataType) -> Any:
        if pa.types.is_int64(arrow):
            return LongType()
        if pa.types.is_integer(arrow):
            return IntegerType()
        if pa.types.is_string(arrow):
            return StringType()
        if pa.types.is_float64(arrow):
            return DoubleType()
        if pa.types.is_boolean(arrow):
            return BooleanType()
        if pa.types.is_timestamp(arrow):
            return TimestamptzType()
        if pa.types.is_date32(arrow):
            return DateType()
        raise TypeError(f"no Iceberg type for the lake's {arrow}")  # a new column: map it

    return Schema(
        *(
            NestedField(number, field.name, kind(field.type), required=False)
            for number, field in enumerate(schema, start=1)
        )
    )


def partition_spec(schema: pa.Schema = TABLE_SCHEMA) -> Any:
    """Return the identity partitioning on ``sms_type`` and ``date``."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import IdentityTransform

    return PartitionSpec(
        *(
            PartitionField(
                source_id=schema.get_field_index(column) + 1,
                field_id=1000 + number,
                transform=IdentityTransform(),
                name=column,
            )
            for number, column in enumerate(PARTITION_COLUMNS)
        )
    )


def _read_staged(path: str, schema: pa.Schema) -> pa.Table:
    """Return a staged window's rows as ``schema`` (one window: one day, one type)."""
    return pq.read_table(path).select(schema.names).cast(schema)


def _write(tx: Any, parts: Iterator[pa.Table]) -> list[Any]:
    """Write each part's data files for the transaction's table; return them, not yet added."""
    import itertools
    import uuid

    from pyiceberg.io.pyarrow import _dataframe_to_data_files

    arrow = tx.table_metadata.schema().as_arrow()
    written: list[Any] = []
    # One name stem and one counter for the whole commit: no two files share a name.
    commit, counter = uuid.uuid4(), itertools.count(0)
    for part in parts:
        if part.num_rows:
            written.extend(
                _dataframe_to_data_files(
                    table_metadata=tx.table_metadata,
                    df=part.select(arrow.names).cast(arrow),
                    io=tx._table.io,
                    write_uuid=commit,
                    counter=counter,
                )
            )
    return written


def _append(tx: Any, parts: Iterator[pa.Table], facts: dict[str, str]) -> None:
    """Append the parts as one snapshot, a window at a time (the sync is never all in memory)."""
    written = _write(tx, parts)
    with tx.update_snapshot(snapshot_properties=facts).fast_append() as append:
        for data_file in written:
            append.append_data_file(data_file)


def _version(table: Any) -> int | None:
    numbers = [
        int(name.removeprefix(TAG_PREFIX))
        for name in table.metadata.refs
        if name.startswith(TAG_PREFIX) and name.removeprefix(TAG_PREFIX).isdigit()
    ]
    return max(numbers) if numbers else None


def _day(value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, int):  # days since the epoch, as Iceberg stores a date
        return date.fromordinal(date(1970, 1, 1).toordinal() + value)
    return date.fromisoformat(str(value))
