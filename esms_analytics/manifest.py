"""The lake's manifest: what was fetched when, and whether it has settled.

::

    _manifest.json        {"schema_version": "1", "writer_version": "0.2.0", "windows": {"<type>/<day>": entry, ...}}
    _manifest.d/<type>_<day>.json    one entry per window recorded since the last compaction

:meth:`Manifest.record` writes one small journal object per window (atomically,
like every write of the store), so recording costs the same at any lake size;
:meth:`Manifest.compact` folds the journal into ``_manifest.json`` when a sync
ends. Readers take both. A missing or damaged ``_manifest.json`` is rebuilt
from the data files' key-value metadata (see :mod:`esms_analytics.lake`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, TypeVar

from esms_analytics._version import __version__
from esms_analytics.errors import ConfigError, CorruptPartitionError, LakeError, NewerLakeError
from esms_analytics.lake import (
    MANIFEST_NAME,
    QUARANTINE_DIR,
    SCHEMA_VERSION,
    Footer,
    PartitionFile,
    is_settled,
    lake_inventory,
    map_files,
    newer_lake_warning,
    newer_schema,
    read_footer,
)
from esms_analytics.privacy.policy import KEY_VARIABLE, POLICIES, PSEUDONYMISED, RAW, PrivacyPolicy
from esms_analytics.store import LakeLocation, LakeStore, open_store

logger = logging.getLogger("esms_analytics")

#: The manifest's journal: one object per window recorded since the last compaction.
JOURNAL_DIR: Final = "_manifest.d"
_T = TypeVar("_T")


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
    def from_json(cls, data: object) -> WindowEntry:
        """Parse one manifest entry, strictly: a field of the wrong JSON type is an error.

        Raises ``ValueError`` naming the field (``"settled": "false"`` is a
        string, not the boolean false, and is refused rather than read as true).
        """
        if not isinstance(data, dict):
            raise ValueError(f"an entry is {type(data).__name__}, not a JSON object")
        fetched_at = datetime.fromisoformat(_typed(data, "fetched_at", str))
        if fetched_at.tzinfo is None:
            raise ValueError(f"fetched_at {fetched_at} has no time zone")
        return cls(
            sms_type=_typed(data, "sms_type", int),
            date=date.fromisoformat(_typed(data, "date", str)),
            fetched_at=fetched_at,
            rows=_count(data, "rows"),
            count_total=_count(data, "count_total"),
            requests=_count(data, "requests"),
            settled=_typed(data, "settled", bool),
        )


def _typed(data: dict[str, Any], name: str, kind: type[_T]) -> _T:
    value = data.get(name)
    # bool is an int in Python, not in JSON: neither may stand for the other.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f'"{name}" is {json.dumps(value)}, not a JSON {kind.__name__}')
    return value


def _count(data: dict[str, Any], name: str) -> int:
    value = _typed(data, name, int)
    if value < 0:
        raise ValueError(f'"{name}" is {value}, below 0')
    return value


def window_key(sms_type: int, day: date) -> str:
    """Return the manifest key of a window."""
    return f"{sms_type}/{day.isoformat()}"


def journal_key(sms_type: int, day: date) -> str:
    """Return the key of a window's journal object."""
    return f"{JOURNAL_DIR}/{sms_type}_{day.isoformat()}.json"


class Manifest:
    """What was fetched when: ``_manifest.json`` plus its journal ``_manifest.d/``.

    :meth:`record` writes one small object per window (``_manifest.d/<type>_<day>.json``,
    atomically, like every write), so recording costs the same at any lake size;
    :meth:`compact` folds the journal into ``_manifest.json`` at the end of a
    sync. Readers take both, the later ``fetched_at`` winning, so a sync killed
    before compacting loses nothing it recorded.

    A missing or damaged ``_manifest.json`` (truncated, ``"windows": null``, a
    directory, a field of the wrong JSON type) is never fatal: the windows of the
    data files it should list are rebuilt from the files' own metadata and
    :attr:`problem` says what happened. Only windows with no rows (no file)
    cannot be rebuilt; the next sync asks for them again.

    Attributes
    ----------
    entries : dict
        :class:`WindowEntry` by :func:`window_key`.
    problem : str or None
        What was wrong with the manifest, or None.
    rebuilt : int
        Windows rebuilt from their files.
    """

    def __init__(self, lake: LakeLocation, *, warn_newer: bool = True):
        # A writer (sync) passes warn_newer=False: it refuses a newer lake in one error
        # (refuse_if_newer) instead of warning that it reads one.
        self.store = open_store(lake)
        self._lock = threading.Lock()
        self.entries: dict[str, WindowEntry] = {}
        #: ``esms`` or ``simulator`` once a window was stored (None in older lakes).
        self.source: str | None = None
        #: ``raw`` or ``pseudonymised`` once a window was stored (None in older lakes: raw).
        self.privacy: str | None = None
        #: The pseudonym key's fingerprint of a pseudonymised lake (never the key).
        self.fingerprint: str | None = None
        self.problem: str | None = None
        self.rebuilt = 0
        #: The lake's ``schema_version`` when newer than this release's (manifest or a
        #: file rebuilt from), else None: see :meth:`refuse_if_newer`.
        self.newer: str | None = None
        self._versions: set[str] = set()
        self._damaged = False
        self._journal: set[str] = set()
        journal = self._read_journal()
        snapshot = self._read_snapshot()
        if snapshot is not None:
            self.entries = snapshot
        for entry in journal:
            self._merge(entry)
        if snapshot is None:
            self._rebuild_missing()
        newer = sorted((found for found in self._versions if newer_schema(found)), key=int)
        if newer:
            self.newer = newer[-1]
            if warn_newer:
                logger.warning("%s", newer_lake_warning(self.store, self.newer))

    def refuse_if_newer(self) -> None:
        """Raise :class:`NewerLakeError` if a newer release wrote the lake (before writing)."""
        if self.newer is not None:
            raise NewerLakeError(
                lake=str(self.store.location),
                found=self.newer,
                known=SCHEMA_VERSION,
                version=__version__,
            )

    @property
    def uri(self) -> str:
        """Where the manifest is, for messages."""
        return self.store.uri(MANIFEST_NAME)

    def _merge(self, entry: WindowEntry) -> None:
        known = self.entries.get(entry.key)
        if known is None or entry.fetched_at >= known.fetched_at:
            self.entries[entry.key] = entry

    def _read_snapshot(self) -> dict[str, WindowEntry] | None:
        try:
            text = self.store.read(MANIFEST_NAME)
            if text is None:
                self.problem = f"the manifest {self.uri} is missing"
                return None
            data = json.loads(text.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("windows"), dict):
                found = json.dumps(data.get("windows")) if isinstance(data, dict) else "absent"
                raise ValueError(f'"windows" is {found[:40]}, not a JSON object')
            source = data.get("source")
            if source is not None and not isinstance(source, str):
                raise ValueError(f'"source" is {json.dumps(source)[:40]}, not a JSON string')
            self.source = source
            self.privacy, self.fingerprint = _privacy_facts(data, strict=True)
            self._versions.add(str(data.get("schema_version")))
            entries = {}
            for key, value in data["windows"].items():
                entry = WindowEntry.from_json(value)
                if entry.key != key:
                    raise ValueError(f"the entry {key} describes the window {entry.key}")
                entries[key] = entry
            return entries
        except (OSError, ValueError) as exc:
            # IsADirectoryError, a cut-off or hand-edited file: the files still know.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problem = f"the manifest {self.uri} is unreadable ({reason[:200]})"
            self._damaged = True
            return None

    def _read_journal(self) -> list[WindowEntry]:
        keys = [info.key for info in self.store.list_files(f"{JOURNAL_DIR}/")]
        self._journal.update(keys)
        entries = []
        for key, text in zip(keys, map_files(self.store, self.store.read, keys), strict=True):
            if text is None:
                continue  # compacted away since the listing: the snapshot holds it now
            try:
                entries.append(WindowEntry.from_json(json.loads(text.decode("utf-8"))))
            except ValueError as exc:
                # Only outside hands can damage an object written atomically: the
                # window is fetched again, as if never recorded.
                logger.warning("lake %s: ignoring %s (%s)", self.store.location, key, exc)
        return entries

    def _rebuild_missing(self) -> None:
        """Rebuild the entries of data files the journal does not cover."""
        files = [
            file
            for file in lake_inventory(self.store).files
            if window_key(file.sms_type, file.date) not in self.entries
        ]
        facts: dict[str, str] = {}
        for entry in map_files(
            self.store,
            lambda file: _entry_from_file(self.store, file, self._versions, facts),
            files,
        ):
            if entry is not None:
                self.entries[entry.key] = entry
                self.rebuilt += 1
        if self.privacy is None:  # the files record the policy the manifest lost
            self.privacy, self.fingerprint = _privacy_facts(facts, strict=False)
        if not self.rebuilt and not self._damaged:
            self.problem = None  # a new lake, or one whose first sync is under way
        elif self.problem is not None:
            self.problem += f"; {self.rebuilt} windows were rebuilt from their files' metadata"
            logger.warning("lake %s: %s", self.store.location, self.problem)

    def get(self, sms_type: int, day: date) -> WindowEntry | None:
        """Return the entry of a window, if it was ever fetched."""
        return self.entries.get(window_key(sms_type, day))

    def take_privacy(self, facts: Mapping[str, str]) -> None:
        """Take the policy that ``facts`` record when the manifest records none.

        For a lake whose rows say their policy elsewhere than in data files (a
        table lake's commits: :meth:`~esms_analytics.tables.TableFormat.lake_facts`),
        whose manifest was lost. Facts that record no policy are a lake made before
        policies: raw.
        """
        if self.privacy is None:
            privacy, fingerprint = _privacy_facts(dict(facts), strict=False)
            self.privacy, self.fingerprint = privacy or RAW, fingerprint

    def check_privacy(self, wanted: PrivacyPolicy | None) -> PrivacyPolicy:
        """Return the policy a sync writes with: the lake's own, or ``wanted`` for a new lake.

        ``wanted`` None takes the lake's (its key from ``ESMS_PSEUDONYM_KEY``), or
        raw for a new lake. Another policy, or another key than the one the lake
        was made with, raises :class:`ConfigError` in one line: call it before
        anything is written. A lake with windows but no recorded policy is raw.
        """
        lake = self.store.location
        recorded = self.privacy or ("raw" if self.entries else None)
        if recorded is None:
            return wanted or PrivacyPolicy("raw")
        if wanted is None:
            try:
                wanted = PrivacyPolicy.from_environment(recorded)
            except ConfigError as exc:
                raise ConfigError(f"the lake {lake} is {recorded}: {exc}") from None
        if wanted.name != recorded:
            raise ConfigError(
                f"the lake {lake} is {recorded}; a sync cannot write {wanted.name} rows into "
                f"it (its policy is chosen when it is created): give another --lake, or "
                f"--privacy {recorded}"
            )
        if wanted.pseudonymised and self.fingerprint != wanted.fingerprint:
            raise ConfigError(
                f"{KEY_VARIABLE} is not the key the lake {lake} was made with (its fingerprint "
                f"is {self.fingerprint}, this key's {wanted.fingerprint}): tokens under two "
                "keys would not match; set the lake's key, or give another --lake"
            )
        return wanted

    def claim(self, source: str | None, privacy: PrivacyPolicy | None = None) -> None:
        """Check that rows from ``source`` may join the lake; a lake's first claim is saved.

        ``privacy`` (checked before by :meth:`check_privacy`) is saved with the
        lake's first claim: its name and its key's fingerprint, never the key.
        ``source`` None (rows copied from a lake older than sources) claims none.
        """
        with self._lock:
            new_policy = self.privacy is None and privacy is not None
            source = source or self.source
            if self.source == source and not new_policy:
                return
            if self.source is not None and self.source != source:
                lake = self.store.location
                raise LakeError(
                    f"the lake {lake} holds rows from the {self.source}; rows from the "
                    f"{source} cannot join them (reports would mix real and simulated "
                    "messages): give another --lake",
                    lake=str(lake),
                )
            self.source = source
            if new_policy and privacy is not None:
                self.privacy, self.fingerprint = privacy.name, privacy.fingerprint
        # Saved at once, not at the end of the sync: a sync killed before then must not
        # leave a lake that the other source could join.
        self.compact(force=True)

    def record(self, entry: WindowEntry) -> None:
        """Record ``entry``: one small journal object, whatever the lake's size (thread-safe)."""
        key = journal_key(entry.sms_type, entry.date)
        text = json.dumps(entry.to_json(), ensure_ascii=False).encode("utf-8")
        self.store.write(key, text)
        with self._lock:
            self.entries[entry.key] = entry
            self._journal.add(key)

    def compact(self, *, force: bool = False) -> None:
        """Fold the journal into ``_manifest.json`` and remove it; call it holding the lock.

        The new manifest is written (atomically) before any journal object is
        removed, so a crash at any point leaves the same entries readable. A
        damaged manifest is first moved to ``_quarantine/``.
        """
        with self._lock:
            if not self._journal and self.problem is None and not force:
                return
            if self._damaged:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                self.store.move(MANIFEST_NAME, f"{QUARANTINE_DIR}/{stamp}/{MANIFEST_NAME}")
                self._damaged = False
            payload = {
                "schema_version": SCHEMA_VERSION,
                "writer_version": __version__,
                **({"source": self.source} if self.source else {}),
                **({"privacy": self.privacy} if self.privacy else {}),
                **({"pseudonym_key_fingerprint": self.fingerprint} if self.fingerprint else {}),
                "windows": {key: self.entries[key].to_json() for key in sorted(self.entries)},
            }
            self.store.write(
                MANIFEST_NAME, json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8")
            )
            self.store.delete_many(sorted(self._journal))
            self._journal.clear()
            self.problem = None


def _privacy_facts(data: dict[str, Any], *, strict: bool) -> tuple[str | None, str | None]:
    """Read ``privacy`` and ``pseudonym_key_fingerprint`` from a manifest or a file's facts."""
    privacy, fingerprint = data.get("privacy"), data.get("pseudonym_key_fingerprint")
    if privacy is not None and privacy not in POLICIES:
        if strict:
            raise ValueError(f'"privacy" is {json.dumps(privacy)[:40]}, not raw or pseudonymised')
        privacy = None
    if privacy == PSEUDONYMISED and not isinstance(fingerprint, str):
        if strict:
            raise ValueError('a pseudonymised lake records no "pseudonym_key_fingerprint"')
        privacy = None
    return privacy, fingerprint if privacy == PSEUDONYMISED else None


def _entry_from_file(
    store: LakeStore, file: PartitionFile, versions: set[str], privacy: dict[str, str]
) -> WindowEntry | None:
    """Rebuild a manifest entry from a data file's footer; None when it cannot be read.

    The file's ``schema_version`` joins ``versions``; the first policy facts found
    go to ``privacy``.
    """
    try:
        footer = read_footer(store, file)
    except CorruptPartitionError as exc:
        logger.warning("lake %s: cannot rebuild %s (%s)", store.location, file.key, exc.problem)
        return None
    facts = footer.facts
    versions.add(str(facts.get("schema_version")))
    for name in ("privacy", "pseudonym_key_fingerprint"):
        if name in facts:
            privacy.setdefault(name, facts[name])
    entry = entry_from_footer(file, footer)
    if entry is None:
        logger.warning("lake %s: %s records no fetch time", store.location, file.key)
    return entry


def entry_from_footer(file: PartitionFile, footer: Footer) -> WindowEntry | None:
    """Return the manifest entry a data file's footer describes; None without a fetch time."""
    facts = footer.facts
    try:
        fetched_at = datetime.fromisoformat(facts["fetched_at"])
        settled_text = facts.get("settled")
        return WindowEntry(
            file.sms_type,
            file.date,
            fetched_at,
            footer.rows,
            int(facts.get("count_total", footer.rows)),
            int(facts.get("requests", 0)),
            is_settled(file.date, fetched_at) if settled_text is None else settled_text == "true",
        )
    except (KeyError, ValueError):
        return None
