"""Delta Lake tables through ``deltalake`` (delta-rs): ``<lake>/delta/``.

One sync is one ``write_deltalake(mode="overwrite", predicate=...)``: the
predicate names every staged window's partition (``sms_type = t AND date IN
(...)`` per type, in batches of days), so the commit removes their old files
and adds the new ones in one log entry. A commit is the atomic creation of
``_delta_log/<version>.json``: a process killed before it leaves only files no
log entry names (invisible to readers, removed by ``vacuum``).

In a bucket the lake's lock already serialises the writers, so delta-rs is
told so (``AWS_S3_ALLOW_UNSAFE_RENAME``) unless the options name a locking
provider or conditional puts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from esms_analytics.errors import ConfigError
from esms_analytics.tables import (
    DELTA,
    PARTITION_COLUMNS,
    TABLE_SCHEMA,
    Compacted,
    StagedWindow,
    TableFormat,
    commit_facts,
    lake_facts_of,
    prune,
    replace_predicate,
    storage_options_for,
)

LOG_DIR: Final = "_delta_log"


class DeltaFormat(TableFormat):
    """A lake's rows as a Delta table in ``<lake>/delta/``."""

    name: ClassVar[str] = DELTA
    folder: ClassVar[str] = "delta"

    def _options(self) -> dict[str, str] | None:
        options = storage_options_for(self.store)
        if self.store.is_local:
            return options or None
        keys = {key.lower() for key in options}
        if not keys & {"aws_s3_locking_provider", "aws_conditional_put", "conditional_put"}:
            options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"  # the lake's lock serialises writers
        return options

    def _table(self, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri, version=version, storage_options=self._options())

    def exists(self) -> bool:
        """Tell whether the table has a first commit."""
        from deltalake import DeltaTable

        return bool(DeltaTable.is_deltatable(self.uri, storage_options=self._options()))

    def commit(
        self,
        windows: Sequence[StagedWindow],
        *,
        schema: pa.Schema = TABLE_SCHEMA,
        facts: Mapping[str, str] | None = None,
    ) -> int:
        """Replace the windows' partitions in one Delta commit; return the new version."""
        from deltalake import CommitProperties, write_deltalake

        if not windows:
            version = self.version()
            return -1 if version is None else version
        paths = [str(window.path) for window in windows if window.path is not None]
        reader = pa.RecordBatchReader.from_batches(schema, _batches(paths, schema))
        with self._writing():
            write_deltalake(
                self.uri,
                reader,
                mode="overwrite",
                predicate=replace_predicate(windows),
                partition_by=list(PARTITION_COLUMNS),
                storage_options=self._options(),
                commit_properties=CommitProperties(custom_metadata=commit_facts(windows, facts)),
            )
        return int(self._table().version())

    def read(
        self,
        *,
        version: int | None = None,
        start: date | None = None,
        end: date | None = None,
        sms_types: Sequence[int] | None = None,
    ) -> pl.LazyFrame:
        """Scan the table at ``version`` (default the latest), partitions pruned."""
        if version is not None:
            latest = self.version()
            if latest is None or not 0 <= version <= latest:
                versions = "none yet" if latest is None else f"0 to {latest}"
                raise ConfigError(
                    f"the Delta table {self.uri} has no version {version} (its versions are "
                    f"{versions}): give one of them"
                )
        scan = pl.scan_delta(self.uri, version=version, storage_options=self._options())
        return prune(scan, start=start, end=end, sms_types=sms_types)

    def version(self) -> int | None:
        """Return the table's version; None before its first commit."""
        if not self.exists():
            return None
        return int(self._table().version())

    def history(self) -> list[dict[str, Any]]:
        """Return the commits, newest first, with their custom metadata."""
        if not self.exists():
            return []
        return list(self._table().history())

    def lake_facts(self) -> dict[str, str]:
        """Return the policy facts of the newest commit that recorded them (its custom metadata)."""
        return lake_facts_of(self.history())

    def partitions(self) -> set[tuple[int, date]]:
        """Return the partitions holding rows, from the log's add actions."""
        return set(self.partition_bytes())

    def partition_bytes(self) -> dict[tuple[int, date], int]:
        """Return each partition holding rows with its live files' bytes (the add actions')."""
        if not self.exists():
            return {}
        actions = pa.table(self._table().get_add_actions(flatten=True))
        found = zip(
            actions.column("partition.sms_type").to_pylist(),
            actions.column("partition.date").to_pylist(),
            actions.column("num_records").to_pylist(),
            actions.column("size_bytes").to_pylist(),
            strict=True,
        )
        sizes: dict[tuple[int, date], int] = {}
        for kind, day, rows, size in found:
            if rows:
                key = (int(kind), _day(day))
                sizes[key] = sizes.get(key, 0) + int(size)
        return sizes

    def compact(self, settled_before: date) -> Compacted:
        """Run ``optimize.compact()`` on the days before ``settled_before``."""
        if not self.exists():
            return Compacted(0, 0, None)
        table = self._table()
        with self._writing():
            metrics = table.optimize.compact(
                partition_filters=[("date", "<", settled_before.isoformat())]
            )
        return Compacted(
            int(metrics.get("numFilesRemoved", 0)),
            int(metrics.get("numFilesAdded", 0)),
            int(table.version()),
        )

    def check(self) -> list[str]:
        """Name each damaged commit file, then each data file the log names but is gone."""
        problems = []
        log = f"{self.folder}/{LOG_DIR}/"
        for info in self.store.list_files(log):
            if not info.key.endswith(".json"):
                continue
            text = self.store.read(info.key) or b""
            try:
                for line in text.decode("utf-8").splitlines():
                    if line.strip():
                        json.loads(line)
            except ValueError as exc:
                problems.append(
                    f"damaged commit file {self.store.uri(info.key)} ({str(exc)[:120]}): "
                    "the table cannot be read past it; restore it from a backup"
                )
        if problems:
            return problems
        try:
            table = self._table() if self.exists() else None
        except Exception as exc:  # delta-rs raises its own error kinds
            return [
                f"the Delta table {self.uri} cannot be opened: {str(exc).splitlines()[0][:200]}"
            ]
        if table is None:
            return []
        # delta-rs names files by absolute path or full URL, whatever the lake was given as.
        root = (
            str(Path(self.store.uri("")).resolve()) if self.store.is_local else self.store.uri("")
        )
        for path in table.file_uris():
            key = path.removeprefix("file://").removeprefix(root).lstrip("/")
            if self.store.head(key) is None:
                problems.append(f"the Delta table {self.uri} names a missing data file {path}")
        return problems


def _batches(paths: Sequence[str], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Yield the staged files' rows a row group at a time, as ``schema``."""
    for path in paths:
        with pq.ParquetFile(path) as file:
            for group in range(file.num_row_groups):
                table = file.read_row_group(group).select(schema.names).cast(schema)
                yield from table.to_batches()


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
