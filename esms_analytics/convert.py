"""Convert a raw lake into a pseudonymised one: ``esms-analytics lake pseudonymise``.

The pseudonymised copy is the lake a pseudonymised sync of the same windows
would have written (README "Personal data"): the same partitions, the same
rows in the same order, the same facts (``fetched_at``, ``count_total``,
``requests``, ``settled``), and a manifest recording the policy and the key's
fingerprint. It is made file by file, one row group at a time, so memory holds
a row group (at most :data:`~esms_analytics.lake.ROW_GROUP_ROWS` rows) per
file in flight, never the lake; the source is only read.

Run again into the same destination, a conversion copies only the windows
the source fetched since (a later ``fetched_at``): a raw lake synced every
night keeps a pseudonymised copy current for the people who may read only
that. A conversion cut short resumes the same way, since every file lands
whole or not at all and the copy's manifest is rebuilt from the files.

This module sits beside :mod:`esms_analytics.sync`, above the lake and its
manifest: it writes a lake as a sync does, from another lake instead of the
service.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from esms_analytics.errors import ConfigError
from esms_analytics.lake import (
    PartitionFile,
    data_key,
    lake_inventory,
    lake_privacy,
    map_files,
    open_lake,
    pseudonymise_file,
)
from esms_analytics.manifest import Manifest, WindowEntry, entry_from_footer
from esms_analytics.privacy.policy import PSEUDONYMISED, RAW, PrivacyPolicy
from esms_analytics.store import CLOUD_SCHEMES, LakeLocation, LakeStore, open_store
from esms_analytics.tables import HIVE, new_lake, table_format_of

__all__ = ["Conversion", "pseudonymise_lake"]

logger = logging.getLogger("esms_analytics")


@dataclass(frozen=True)
class Conversion:
    """What :func:`pseudonymise_lake` did.

    Attributes
    ----------
    source, destination : str
        The two lakes, as given.
    windows : int
        Windows recorded in the destination by this run (with rows or without).
    files, rows : int
        Data files written, and the rows in them.
    current : int
        Windows the destination already held as the source does: not copied again.
    missing : int
        Windows the source's manifest lists with rows but whose file is gone: not
        copied (a ``sync --refresh`` of their days on the source brings them back).
    """

    source: str
    destination: str
    windows: int
    files: int
    rows: int
    current: int
    missing: int

    def summary(self) -> str:
        """Say in one line what was converted."""
        line = (
            f"{self.destination}: {self.windows:,} windows pseudonymised from {self.source} "
            f"({self.files:,} files, {self.rows:,} rows); {self.current:,} already current"
        )
        if self.missing:
            line += (
                f"; {self.missing:,} windows not copied, their files are missing in the source: "
                "run `esms-analytics lake check` on it"
            )
        return line


def pseudonymise_lake(
    source: LakeLocation,
    destination: LakeLocation,
    *,
    privacy: PrivacyPolicy | None = None,
    storage_options: Mapping[str, str] | None = None,
) -> Conversion:
    """Write the pseudonymised copy of the raw Hive lake ``source`` into ``destination``.

    ``destination`` is a new or empty folder or prefix, or an earlier copy made
    under the same key (then only the windows fetched since are copied).
    ``privacy`` is a pseudonymised :class:`~esms_analytics.privacy.policy.PrivacyPolicy`;
    by default its key comes from ``ESMS_PSEUDONYM_KEY``. Both lakes may be
    local or in object storage; ``storage_options`` apply to either.

    Refused with :class:`~esms_analytics.errors.ConfigError` in one line, with
    nothing written: a missing or short key; a source that is pseudonymised
    already, a Delta or Iceberg table lake, or newer than this release; a
    destination that is the source (or inside it, or around it), that holds
    anything but a pseudonymised lake, or that was made with another key.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import timedelta
    >>> from esms_analytics.sync import sync
    >>> from esms_analytics.simulator import Simulator
    >>> raw, private = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> with Simulator(daily_volume=50, days=5) as sim, sim.client() as client:
    ...     _ = sync(raw, sim.today - timedelta(days=3), sim.today - timedelta(days=1),
    ...              client=client, progress=False)
    >>> policy = PrivacyPolicy("pseudonymised", key="0123456789abcdef")
    >>> done = pseudonymise_lake(raw, private, privacy=policy)
    >>> done.windows, done.current
    (21, 0)
    >>> pseudonymise_lake(raw, private, privacy=policy).current
    21
    """
    policy = privacy if privacy is not None else PrivacyPolicy.from_environment(PSEUDONYMISED)
    if not policy.pseudonymised:
        raise ConfigError("pseudonymise_lake writes a pseudonymised lake: give its policy")
    origin = open_lake(_opened(source, storage_options), create=False)
    target = _opened(destination, storage_options)
    _refuse_overlap(origin, target)
    known = _raw_lake(origin)
    _refuse_destination(target)
    target.prepare(create=True)
    with target.lock():
        copy = Manifest(target, warn_newer=False)
        copy.refuse_if_newer()
        if copy.entries and copy.privacy != PSEUDONYMISED:
            raise ConfigError(
                f"the lake {target.location} holds raw rows: a pseudonymised copy goes to a new "
                "folder or to an earlier copy; give another --to"
            )
        copy.check_privacy(policy)
        copy.claim(known.source, policy)
        conversion = _copy_windows(origin, known, target, copy, policy)
        copy.compact()
    logger.info("%s", conversion.summary())
    return conversion


def _opened(location: LakeLocation, storage_options: Mapping[str, str] | None) -> LakeStore:
    """Open a lake's store; ``storage_options`` go to an object store only (one may be local)."""
    if isinstance(location, LakeStore) or not storage_options:
        return open_store(location)
    remote = urlsplit(os.fspath(location)).scheme in CLOUD_SCHEMES
    return open_store(location, storage_options=storage_options if remote else None)


def _raw_lake(store: LakeStore) -> Manifest:
    """Return the manifest of the raw Hive lake ``store``; refuse any other lake."""
    table_format = table_format_of(store)
    if table_format != HIVE and lake_privacy(store) == PSEUDONYMISED:
        raise ConfigError(
            f"the lake {store.location} is pseudonymised already: it has no raw rows to "
            "pseudonymise"
        )
    if table_format != HIVE:
        raise ConfigError(
            f"the lake {store.location} is a {table_format} table lake: only a Hive lake is "
            "converted (a table keeps its raw rows in its earlier versions); sync the same days "
            "from eSMS into a new lake instead: esms-analytics sync --lake NEW "
            f"--table-format {table_format} --privacy pseudonymised --from ... --to ..."
        )
    manifest = Manifest(store, warn_newer=False)
    manifest.refuse_if_newer()
    if (manifest.privacy or RAW) != RAW:
        raise ConfigError(
            f"the lake {store.location} is {manifest.privacy} already: it has no raw rows to "
            "pseudonymise"
        )
    return manifest


def _refuse_overlap(origin: LakeStore, target: LakeStore) -> None:
    """Refuse a destination that is the source, lies inside it or holds it."""
    first, second = (_where(store) for store in (origin, target))
    if first == second or first.startswith(f"{second}/") or second.startswith(f"{first}/"):
        raise ConfigError(
            f"--to {target.location} and --lake {origin.location} overlap: the copy must lie "
            "outside the source lake (and the source outside it); give another --to"
        )


def _where(store: LakeStore) -> str:
    location = store.uri("")
    if store.is_local:
        return os.path.realpath(Path(location))
    return location.rstrip("/")


def _refuse_destination(target: LakeStore) -> None:
    """Refuse a destination holding anything but a Hive lake (checked for its policy later)."""
    if target.is_local and not Path(target.uri("")).exists():
        return
    table_format = table_format_of(target)
    if table_format != HIVE:
        raise ConfigError(
            f"the lake {target.location} is a {table_format} table lake: a pseudonymised copy "
            "is a Hive lake; give another --to"
        )
    if not new_lake(target):
        return
    found = target.list_files("")
    if found:
        raise ConfigError(
            f"--to {target.location} is not empty and not a lake ({found[0].key} and "
            f"{len(found) - 1} more): give a new folder, or an empty one"
        )


def _copy_windows(
    origin: LakeStore,
    known: Manifest,
    target: LakeStore,
    copy: Manifest,
    policy: PrivacyPolicy,
) -> Conversion:
    """Copy every window of ``known`` the destination lacks, or holds from an earlier fetch."""
    files = {(file.sms_type, file.date): file for file in lake_inventory(origin).files}
    due: list[tuple[WindowEntry, PartitionFile | None]] = []
    current = missing = 0
    for key in sorted(known.entries):
        entry = known.entries[key]
        held = copy.entries.get(key)
        if held is not None and held.fetched_at >= entry.fetched_at:
            current += 1
        elif entry.rows and (entry.sms_type, entry.date) not in files:
            missing += 1
            logger.warning(
                "lake %s: the window %s lists %d rows but has no file; not copied",
                origin.location,
                key,
                entry.rows,
            )
        else:
            due.append((entry, files.get((entry.sms_type, entry.date))))

    def one(window: tuple[WindowEntry, PartitionFile | None]) -> int:
        entry, file = window
        if file is None or not entry.rows:
            target.delete(data_key(entry.sms_type, entry.date))  # an earlier copy's rows
            copy.record(entry)
            return 0
        footer = pseudonymise_file(origin, file, target, policy)
        copy.record(entry_from_footer(file, footer) or entry)
        return footer.rows

    # Side by side when either lake is remote (requests wait); in order on one disk.
    remote = target if not target.is_local else origin
    rows = map_files(remote, one, due)
    return Conversion(
        source=origin.location,
        destination=target.location,
        windows=len(due),
        files=sum(1 for entry, file in due if file is not None and entry.rows),
        rows=sum(rows),
        current=current,
        missing=missing,
    )
