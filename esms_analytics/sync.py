"""Incremental sync of eSMS history into the Parquet lake.

A window (one SmsType, one Vietnam-local creation day) is fetched when

- it was never fetched, or its partition file is gone;
- it was fetched before it settled: statuses change for about three days
  after sending, so a day fetched less than ``settle_days`` after it ended is
  fetched again on the next sync;
- ``refresh=True``.

Settled windows are never requested again. A window is stored only when it
is complete (unique rows equal ``CountTotal``); otherwise its old partition
stays and it is reported ``incomplete``. A re-fetch that comes back with
fewer than :data:`SHRINK_LIMIT` of the rows stored (an empty answer above
all: eSMS's retention, another account's keys, a wrong base URL) is not
stored either unless ``allow_shrink=True``: the window is reported
``failed`` and its old partition kept. Windows run in parallel threads that
share the client's rate limit; a window streams (its rows are decoded in
batches, each sorted and spilled to a hidden file, duplicates found from 8-byte
row hashes; the file keeps the batches in the order they came), so memory holds
a batch per worker, not a window; windows are planned as they
are needed, so a range of decades costs no memory up front.

Stopping: set ``client.stop`` (the CLI does on Ctrl-C and SIGTERM). No request
is sent after it, windows not yet begun are reported ``stopped``, partition
writes under way finish, and :func:`sync` returns at once with
``report.stopped`` set: windows still waiting on an HTTP answer are abandoned
(they can no longer write). A refused connection, an unknown host or a failed
TLS handshake (:class:`ServiceUnreachableError`) and refused credentials stop
the whole sync the same way and are raised.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from esms_analytics.arguments import check_range, sms_type_list, to_date
from esms_analytics.client import EsmsClient, Window
from esms_analytics.codes import VN_TZ
from esms_analytics.errors import (
    AuthError,
    ConfigError,
    EsmsError,
    LakeError,
    ServiceUnreachableError,
    StoppedError,
)
from esms_analytics.lake import (
    SOURCE_ESMS,
    SOURCE_SIMULATOR,
    PartitionWriter,
    discard_unused_lake,
    open_lake,
    partition_files,
    partition_key,
    table_schema_of,
)
from esms_analytics.manifest import Manifest, WindowEntry
from esms_analytics.privacy.policy import PrivacyPolicy
from esms_analytics.probes import ProbeResult, find_empty
from esms_analytics.store import LakeLocation, LakeStore, open_store
from esms_analytics.tables import StagedWindow, TableFormat, choose_table_format, open_table
from esms_analytics.windows import DEFAULT_PASSES, ROW_ORDER, WindowStream, stream_window
from esms_analytics.wire import MAX_PAGE_SIZE

if TYPE_CHECKING:
    import polars as pl

logger = logging.getLogger("esms_analytics")

WindowStatus = Literal["fetched", "skipped", "incomplete", "failed", "stopped"]
DEFAULT_SETTLE_DAYS: Final = 3
#: A re-fetch returning fewer than this share of the rows a window has stored is refused
#: without ``allow_shrink``. Statuses change and rows are never deleted on eSMS's side, so
#: a window that shrinks by half is a wrong answer far more often than a true one.
SHRINK_LIMIT: Final = 0.5
#: The first day a window can start on: Vietnam's midnight of it is after the Unix epoch.
EARLIEST_DAY: Final = date(1970, 1, 2)
#: How often the sync's own thread looks at ``client.stop`` while windows run.
STOP_POLL_SECONDS: Final = 0.1


@dataclass(frozen=True)
class WindowReport:
    """What sync did with one window."""

    sms_type: int
    date: date
    status: WindowStatus
    rows: int = 0
    count_total: int = 0
    requests: int = 0
    settled: bool = False
    detail: str = ""
    #: Of ``requests``, those that repeated a page after a transient fault.
    retries: int = 0
    #: Seconds from the window's first request to its outcome (writes included).
    seconds: float = 0.0


@dataclass
class SyncReport:
    """The outcome of :func:`sync`: one :class:`WindowReport` per window in the range."""

    windows: list[WindowReport] = field(default_factory=list)
    #: True when the sync was stopped (``client.stop``) before every window was done.
    stopped: bool = False
    #: Windows of the range a stopped sync never reached (not in ``windows``).
    not_started: int = 0
    #: Requests of the wide probes (:mod:`esms_analytics.probes`), retries included.
    probe_requests: int = 0

    @property
    def complete(self) -> bool:
        """True when no window is incomplete, failed or stopped."""
        return all(window.status in ("fetched", "skipped") for window in self.windows)

    @property
    def requests(self) -> int:
        """HTTP requests made, retries included."""
        return sum(window.requests for window in self.windows) + self.probe_requests

    @property
    def retries(self) -> int:
        """Requests of the windows that repeated a page after a transient fault.

        A probe's retries are counted in :attr:`probe_requests`; the client's
        ``retries_made`` counts them all.
        """
        return sum(window.retries for window in self.windows)

    @property
    def rows(self) -> int:
        """Rows written by this sync."""
        return sum(window.rows for window in self.windows if window.status == "fetched")

    def totals(self) -> dict[str, int | bool]:
        """Return the sync's numbers, for monitoring (an Airflow task can return them).

        >>> SyncReport().totals()["windows"]
        0
        """
        statuses: tuple[WindowStatus, ...] = ("fetched", "skipped", "incomplete", "failed")
        return {
            "windows": len(self.windows) + self.not_started,
            **{status: self.count(status) for status in statuses},
            "stopped": self.count("stopped"),
            "rows": self.rows,
            "requests": self.requests,
            "probe_requests": self.probe_requests,
            "retries": self.retries,
            "complete": self.complete,
        }

    def count(self, status: WindowStatus) -> int:
        """How many windows ended with ``status`` (``stopped`` counts those never reached)."""
        reached = sum(window.status == status for window in self.windows)
        return reached + (self.not_started if status == "stopped" else 0)

    def summary(self) -> str:
        """One line for people, then one per window that did not complete."""
        lines = [
            f"{len(self.windows) + self.not_started} windows: {self.count('fetched')} fetched, "
            f"{self.count('skipped')} skipped (settled), {self.count('incomplete')} incomplete, "
            f"{self.count('failed')} failed"
            + (f", {self.count('stopped')} not fetched (stopped)" if self.stopped else "")
            + f"; {self.rows:,} rows written, {self.requests:,} requests"
        ]
        for window in self.windows:
            if window.status in ("incomplete", "failed"):
                lines.append(
                    f"  {window.status}: sms_type={window.sms_type} "
                    f"date={window.date}: {window.detail}"
                )
        return "\n".join(lines)


def settled_at(day: date, settle_days: int) -> datetime:
    """Return the moment from which a fetch of ``day`` counts as final."""
    end = datetime(day.year, day.month, day.day, tzinfo=VN_TZ) + timedelta(days=1)
    return end + timedelta(days=settle_days)


def sync(
    lake: LakeLocation,
    start: date | str,
    end: date | str,
    *,
    sms_types: Sequence[int] | None = None,
    client: EsmsClient | None = None,
    settle_days: int = DEFAULT_SETTLE_DAYS,
    workers: int = 4,
    refresh: bool = False,
    progress: bool = True,
    now: datetime | None = None,
    page_size: int = MAX_PAGE_SIZE,
    max_passes: int = DEFAULT_PASSES,
    storage_options: Mapping[str, str] | None = None,
    allow_shrink: bool = False,
    table_format: str | None = None,
    probes: bool = True,
    privacy: str | PrivacyPolicy | None = None,
) -> SyncReport:
    """Bring the lake up to date for the days ``start``..``end`` (inclusive).

    Parameters
    ----------
    lake : path, URL or LakeStore
        The lake: a directory (created when missing) or an object-store URL
        (``s3://bucket/prefix``, ``gs://...``, ``az://...``).
    start, end : date or ``YYYY-MM-DD``
        Vietnam-local creation days.
    sms_types : sequence of int, optional
        Message types to sync; every type by default.
    client : EsmsClient, optional
        Default: ``EsmsClient()`` from the environment.
    settle_days : int
        Days after a day ends before its statuses count as final.
    workers : int
        Windows fetched in parallel (they share the client's rate limit).
    refresh : bool
        Fetch every window again, settled or not (repairs a corrupt file).
    progress : bool
        Show a ``tqdm`` progress bar (terminal or Jupyter).
    now : datetime, optional
        The current moment, for deciding what has settled; default the clock.
    page_size : int
        Rows per page asked of the service (at most 500).
    max_passes : int
        Walks of a window that keeps changing before it is reported incomplete.
    storage_options : mapping, optional
        Object-store options (``aws_region``, ``aws_endpoint_url``...) on top of
        the cloud's standard environment; their values are never shown.
    allow_shrink : bool
        Store a re-fetch even when it holds fewer than :data:`SHRINK_LIMIT` of
        the rows stored (or none); without it such a window fails, its
        partition kept.
    table_format : ``hive``, ``delta`` or ``iceberg``, optional
        The format of a new lake (default ``hive``); an existing lake keeps its
        own, and another one asked for is refused. For a table, the windows
        fetched are committed together when the sync ends (one table version).
        An Iceberg lake in a bucket needs ``ESMS_ICEBERG_CATALOG_URI``
        (:mod:`esms_analytics.tables.iceberg`).
    probes : bool
        Find empty windows with wide probes first (:mod:`esms_analytics.probes`):
        one request for a month of an unused type instead of one a day.
    privacy : ``raw``, ``pseudonymised`` or PrivacyPolicy, optional
        A new lake's policy (default ``raw``; README "Personal data"); an existing
        lake keeps its own, and another one, or another pseudonym key, is refused
        (:class:`ConfigError`) before anything is written. ``pseudonymised`` takes
        its key from ``ESMS_PSEUDONYM_KEY``; a pseudonymised lake needs it even
        when ``privacy`` is omitted. A table lake (``table_format``) holds its
        policy's columns as a Hive lake's files do.

    Returns
    -------
    SyncReport
        ``report.complete`` is true when every window is stored whole.
    """
    first, last, types = _check_arguments(start, end, sms_types, workers, settle_days)
    wanted = _wanted_policy(privacy)
    moment = (now or datetime.now(VN_TZ)).astimezone(VN_TZ)
    if last > moment.date():
        raise ConfigError(
            f"--to {last} is in the future (today is {moment.date()} in Vietnam); "
            "messages cannot have been created then"
        )
    target = open_store(lake, storage_options=storage_options)
    fresh = target.is_local and not Path(target.uri("")).exists()
    lake_store = open_lake(target, create=True)
    owns_client = client is None
    esms = client or EsmsClient()
    report = SyncReport()
    try:
        with lake_store.lock(), _discarded_unless_used(lake_store, fresh):
            manifest = Manifest(lake_store, warn_newer=False)
            manifest.refuse_if_newer()  # a newer release's lake: nothing is written
            # Another policy or another key: refused before anything is written or asked.
            policy = _check_privacy(lake_store, manifest, wanted)
            if removed := lake_store.clear_litter():
                logger.info("removed %d temporary files left by an interrupted sync", removed)
            staging = Staging.open(
                lake_store, table_format, new=not manifest.entries, privacy=policy
            )
            plan = _Plan(
                staging.stored(first, last, types)
                if staging is not None
                else _stored(lake_store, first, last, types),
                manifest,
                first,
                last,
                types,
                refresh=refresh,
            )
            store = _WindowStore(
                esms,
                lake_store,
                manifest,
                moment=moment,
                settle_days=settle_days,
                page_size=page_size,
                max_passes=max_passes,
                allow_shrink=allow_shrink,
                pages_ahead=workers,
                staging=staging,
                privacy=policy,
            )
            probed = plan.probe(esms, workers) if probes else None
            try:
                report = _run(store, plan, workers=workers, progress=progress)
            finally:
                if staging is not None:  # the windows verified: one table commit
                    staging.commit(manifest)
            if probed is not None:
                report.probe_requests = probed.requests
            if not report.stopped:  # a stopped sync leaves its journal: readers take it
                manifest.compact()  # this sync's journal, folded into _manifest.json
    finally:
        if owns_client:
            esms.close()
    report.windows.sort(key=lambda window: (window.date, window.sms_type))
    return report


def _check_privacy(
    store: LakeStore, manifest: Manifest, wanted: PrivacyPolicy | None
) -> PrivacyPolicy:
    """Return the policy to write with, as :meth:`Manifest.check_privacy` does.

    A table lake whose manifest was lost keeps its policy and key in its commits:
    they are checked as a Hive lake's files' are.
    """
    if manifest.privacy is None and not manifest.entries:
        table = open_table(store)
        if table is not None and table.exists():
            manifest.take_privacy(table.lake_facts())
    return manifest.check_privacy(wanted)


def _wanted_policy(privacy: str | PrivacyPolicy | None) -> PrivacyPolicy | None:
    """Turn ``privacy`` into a policy (its key from the environment)."""
    if privacy is None:
        return None
    return (
        privacy if isinstance(privacy, PrivacyPolicy) else PrivacyPolicy.from_environment(privacy)
    )


@contextlib.contextmanager
def _discarded_unless_used(lake: LakeStore, fresh: bool) -> Iterator[None]:
    """Remove a new lake that the sync left unused: a failed first sync leaves nothing."""
    try:
        yield
    finally:
        if fresh:
            discard_unused_lake(lake)


def _check_arguments(
    start: date | str,
    end: date | str,
    sms_types: Sequence[int] | None,
    workers: int,
    settle_days: int,
) -> tuple[date, date, list[int]]:
    first, last = to_date(start), to_date(end)
    if first < EARLIEST_DAY:
        raise ConfigError(
            f"--from {first} is before {EARLIEST_DAY}: eSMS times count from 1970, so no "
            "message is older"
        )
    check_range(first, last)
    types = sms_type_list(sms_types)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if settle_days < 0:
        raise ConfigError(f"settle_days cannot be negative, got {settle_days}")
    return first, last, types


@dataclass(frozen=True)
class _Job:
    """A window to fetch, and why."""

    sms_type: int
    day: date
    reason: str
    #: A wide probe found the window empty: it is recorded so without a request.
    probed_empty: bool = False


class _Plan:
    """The windows of a range, decided one at a time: a job to fetch, or a settled skip."""

    def __init__(
        self,
        stored: set[tuple[int, date]],
        manifest: Manifest,
        first: date,
        last: date,
        types: list[int],
        *,
        refresh: bool,
    ):
        self.stored, self.manifest, self.refresh = stored, manifest, refresh
        self.first, self.types = first, types
        self.days = (last - first).days + 1
        #: Windows a wide probe found empty in this sync.
        self.empty: set[tuple[int, date]] = set()

    def probe(self, client: EsmsClient, workers: int) -> ProbeResult:
        """Probe the windows to fetch that hold no rows yet; remember those found empty."""
        candidates: dict[int, list[date]] = {}
        busy: dict[int, list[date]] = {}
        for known in self.manifest.entries.values():
            if known.rows and known.sms_type in self.types:
                busy.setdefault(known.sms_type, []).append(known.date)
        for dates in busy.values():
            dates.sort()
        for offset in range(self.days):
            day = self.first + timedelta(days=offset)
            for sms_type in self.types:
                entry = self.manifest.get(sms_type, day)
                if _why_fetch(self.stored, entry, self.refresh) is None:
                    continue
                if entry is None or not entry.rows:  # a window with rows is never probed
                    candidates.setdefault(sms_type, []).append(day)

        def likely_busy(sms_type: int, day: date) -> bool:
            # The type had rows in the week before: a nightly sync asks its days directly.
            dates = busy.get(sms_type, [])
            at = bisect.bisect_left(dates, day)
            return at > 0 and (day - dates[at - 1]).days <= 7

        found = find_empty(client, candidates, likely_busy=likely_busy, workers=workers)
        self.empty = found.empty
        if found.empty:
            logger.info(
                "wide probes: %d windows found empty",
                len(found.empty),
                extra={"event": "probes", "empty_windows": len(found.empty)},
            )
        return found

    @property
    def windows(self) -> int:
        """Windows in the range, fetched or not."""
        return self.days * len(self.types)

    def decisions(self) -> Iterator[_Job | WindowReport]:
        """Each window of the range in order: a job, or the report of a settled skip."""
        for offset in range(self.days):
            day = self.first + timedelta(days=offset)
            for sms_type in self.types:
                entry = self.manifest.get(sms_type, day)
                reason = _why_fetch(self.stored, entry, self.refresh)
                if reason is not None:
                    yield _Job(sms_type, day, reason, (sms_type, day) in self.empty)
                    continue
                assert entry is not None
                yield WindowReport(
                    sms_type,
                    day,
                    "skipped",
                    rows=entry.rows,
                    count_total=entry.count_total,
                    settled=True,
                    detail="settled",
                )

    def jobs(self) -> int:
        """Count the windows to fetch from the manifest alone: no walk over the range."""
        if self.refresh:
            return self.windows
        last = self.first + timedelta(days=self.days - 1)
        types = set(self.types)
        settled = sum(
            entry.sms_type in types
            and self.first <= entry.date <= last
            and _why_fetch(self.stored, entry, refresh=False) is None
            for entry in self.manifest.entries.values()
        )
        return self.windows - settled


@dataclass(frozen=True)
class SyncPlan:
    """What a sync of a range would do, counted before it starts."""

    #: Windows in the range: days x message types.
    windows: int
    #: Windows not yet stored, or not settled (each takes at least one request).
    to_fetch: int

    def seconds(self, rate_limit: float | None) -> float | None:
        """Least time the requests take at ``rate_limit`` per second; None without a limit."""
        return self.to_fetch / rate_limit if rate_limit else None


def plan_sync(
    lake: LakeLocation,
    start: date | str,
    end: date | str,
    *,
    sms_types: Sequence[int] | None = None,
    refresh: bool = False,
    storage_options: Mapping[str, str] | None = None,
    privacy: str | PrivacyPolicy | None = None,
    table_format: str | None = None,
) -> SyncPlan:
    """Count what :func:`sync` would fetch, from the manifest, without a request or a lock.

    ``privacy`` and ``table_format`` are checked as :func:`sync` checks them: a
    sync that would be refused is refused here, before its plan is told.

    Examples
    --------
    >>> import tempfile
    >>> plan_sync(tempfile.mkdtemp(), "2026-01-01", "2026-12-31", sms_types=[2])
    SyncPlan(windows=365, to_fetch=365)
    """
    first, last, types = _check_arguments(start, end, sms_types, workers=1, settle_days=0)
    wanted = _wanted_policy(privacy)
    store = open_store(lake, storage_options=storage_options)
    windows = (last - first).days + 1
    if store.is_local and not Path(store.uri("")).exists():
        return SyncPlan(windows * len(types), windows * len(types))  # a new lake
    # A file, an unwritable folder, a missing bucket, refused credentials: said now. (A
    # local folder is created only by the sync itself; a bucket is only listed.)
    store.prepare(create=True)
    stored = _stored(store, first, last, types)
    manifest = Manifest(store, warn_newer=False)
    manifest.refuse_if_newer()  # the sync would refuse it: say so before the plan
    _check_privacy(store, manifest, wanted)
    plan = _Plan(stored, manifest, first, last, types, refresh=refresh)
    return SyncPlan(plan.windows, plan.jobs())


def _stored(store: LakeStore, first: date, last: date, types: list[int]) -> set[tuple[int, date]]:
    """List the (type, day) partitions that hold a file, from the store's keys."""
    return {
        (file.sms_type, file.date)
        for file in partition_files(store, start=first, end=last, sms_types=types)
    }


def _why_fetch(
    stored: set[tuple[int, date]], entry: WindowEntry | None, refresh: bool
) -> str | None:
    if refresh:
        return "refresh"
    if entry is None:
        return "missing"
    if not entry.settled:
        return "not settled"
    if entry.rows and (entry.sms_type, entry.date) not in stored:
        return "file missing"
    return None


class _WriteGate:
    """Lets partition writes through until closed; closing waits for the writes under way.

    Once the sync returns (and lets go of the lake's lock) no thread it left
    behind may write: a window still waiting on the network when the sync was
    stopped finds the gate closed and drops its rows.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._writing = 0
        self._closed = False
        self._open: set[PartitionWriter] = set()

    def enter(self) -> bool:
        """Begin a write; False when the gate is closed (do not write)."""
        with self._condition:
            if self._closed:
                return False
            self._writing += 1
            return True

    def leave(self) -> None:
        """End a write begun with :meth:`enter`."""
        with self._condition:
            self._writing -= 1
            self._condition.notify_all()

    def close(self) -> None:
        """Refuse new writes, wait for those under way, remove the spills left open."""
        with self._condition:
            self._closed = True
            self._condition.wait_for(lambda: self._writing == 0)
            left, self._open = self._open, set()
        for writer in left:  # windows still waiting on the network: they can no longer write
            writer.discard()

    def opened(self, writer: PartitionWriter) -> _GatedWriter:
        """Let ``writer`` spill rows only through the gate; :meth:`close` discards it."""
        with self._condition:
            self._open.add(writer)
        return _GatedWriter(writer, self)

    def closed(self, writer: PartitionWriter) -> None:
        """Forget ``writer``: it was committed or discarded."""
        with self._condition:
            self._open.discard(writer)


class _GatedWriter:
    """A window's :class:`PartitionWriter`, spilling only while the gate is open."""

    def __init__(self, writer: PartitionWriter, gate: _WriteGate):
        self.writer, self.gate = writer, gate

    def write(self, frame: pl.DataFrame) -> None:
        """Spill ``frame``; raise :class:`StoppedError` once the sync has returned."""
        if not self.gate.enter():
            raise StoppedError("the sync stopped: the window's rows are not spilled")
        try:
            self.writer.write(frame)
        finally:
            self.gate.leave()

    def discard(self) -> None:
        """Remove the spill."""
        self.writer.discard()
        self.gate.closed(self.writer)


@dataclass
class _WindowStore:
    """Fetches one window completely and stores it: the work of one sync thread."""

    client: EsmsClient
    lake: LakeStore
    manifest: Manifest
    moment: datetime
    settle_days: int
    page_size: int
    max_passes: int
    allow_shrink: bool
    pages_ahead: int
    #: Set when a fatal error (credentials, unreachable service) ends the sync.
    fatal: threading.Event = field(default_factory=threading.Event)
    #: A table lake's windows wait here for the sync's one commit (None: Hive).
    staging: Staging | None = None
    gate: _WriteGate = field(default_factory=_WriteGate)
    #: The lake's policy, checked: a pseudonymised lake's rows are pseudonymised on write.
    privacy: PrivacyPolicy = field(default_factory=lambda: PrivacyPolicy("raw"))

    def stopping(self) -> bool:
        """Tell whether the caller stopped the client or a fatal error ended the sync."""
        return self.client.stop.is_set() or self.fatal.is_set()

    def run(
        self, job: _Job, *, page_pool: Executor, in_flight: threading.Semaphore
    ) -> WindowReport:
        """Do :meth:`fetch_and_keep`, timed."""
        began = time.monotonic()
        report = self.fetch_and_keep(job, page_pool=page_pool, in_flight=in_flight)
        return replace(report, seconds=time.monotonic() - began)

    def fetch_and_keep(
        self, job: _Job, *, page_pool: Executor, in_flight: threading.Semaphore
    ) -> WindowReport:
        """Fetch ``job``'s window and, when it is complete, replace its partition.

        The rows are spilled as they come (:class:`PartitionWriter`); whatever
        the outcome, the spill is gone when this returns.
        """
        if self.stopping():
            return _stopped(job)
        if job.probed_empty:
            return self._keep_empty(job)
        try:
            stream = stream_window(
                self.client,
                job.sms_type,
                Window.for_day(job.day),
                lambda: self.gate.opened(
                    PartitionWriter(
                        self.lake, job.sms_type, job.day, order=ROW_ORDER, privacy=self.privacy
                    )
                ),
                page_size=self.page_size,
                max_passes=self.max_passes,
                pages=page_pool,
                in_flight=in_flight,
                pages_ahead=self.pages_ahead,
            )
        except StoppedError:
            return _stopped(job)
        except (AuthError, ServiceUnreachableError, LakeError):
            self.fatal.set()
            raise
        except EsmsError as exc:
            # Reported once, in the summary; the log keeps it for --debug.
            logger.debug("sms_type=%d date=%s failed: %s", job.sms_type, job.day, exc)
            return WindowReport(job.sms_type, job.day, "failed", detail=str(exc))
        except OSError as exc:
            raise self._cannot_write(job, exc) from exc
        try:
            return self._keep(job, stream)
        finally:
            stream.sink.discard()

    def _keep_empty(self, job: _Job) -> WindowReport:
        """Record a window a wide probe found empty, as an empty day window is recorded."""
        sink = self.gate.opened(
            PartitionWriter(self.lake, job.sms_type, job.day, order=ROW_ORDER, privacy=self.privacy)
        )
        stream = WindowStream(job.sms_type, Window.for_day(job.day), sink, 0, 0, 0, 1, 0)
        try:
            return self._keep(replace(job, reason=f"{job.reason}; empty in a wide probe"), stream)
        except OSError as exc:
            raise self._cannot_write(job, exc) from exc
        finally:
            sink.discard()

    def _keep(self, job: _Job, stream: WindowStream[_GatedWriter]) -> WindowReport:
        """Store a complete window that did not shrink, while the sync still runs."""
        if not stream.complete:
            return WindowReport(
                job.sms_type,
                job.day,
                "incomplete",
                rows=stream.rows,
                count_total=stream.count_total,
                requests=stream.requests,
                retries=stream.retries,
                detail=f"CountTotal {stream.count_total} but {stream.rows} unique rows "
                f"after {stream.passes} passes; the old partition is kept",
            )
        if (shrunk := self._shrunk(job, stream)) is not None:
            return shrunk
        if not self.gate.enter():
            return _stopped(job)
        try:
            return self._store(job, stream)
        finally:
            self.gate.leave()

    def _cannot_write(self, job: _Job, exc: OSError) -> LakeError:
        """Stop every window and say which write failed: a full disk fails them all alike."""
        self.fatal.set()
        return LakeError(
            f"cannot write the partition sms_type={job.sms_type} date={job.day} "
            f"to {self.lake.location}: {exc.strerror or exc}",
            lake=self.lake.location,
            partition=partition_key(job.sms_type, job.day),
        )

    def _shrunk(self, job: _Job, result: WindowStream[_GatedWriter]) -> WindowReport | None:
        """Report a re-fetch far smaller than what is stored, unless shrinking is allowed."""
        entry = self.manifest.get(job.sms_type, job.day)
        if self.allow_shrink or entry is None or job.reason == "file missing":
            return None
        rows = result.rows
        if rows >= entry.rows * SHRINK_LIMIT:
            return None
        detail = (
            f"the re-fetch returned {rows:,} rows (CountTotal {result.count_total:,}) but the "
            f"lake holds {entry.rows:,}; the old partition is kept; if the data really is gone "
            "on eSMS's side, run again with --allow-shrink (sync(..., allow_shrink=True))"
        )
        logger.warning("sms_type=%d date=%s: %s", job.sms_type, job.day, detail)
        return WindowReport(
            job.sms_type,
            job.day,
            "failed",
            rows=rows,
            count_total=result.count_total,
            requests=result.requests,
            retries=result.retries,
            detail=detail,
        )

    def _store(self, job: _Job, result: WindowStream[_GatedWriter]) -> WindowReport:
        fetched_at = datetime.now(VN_TZ)
        settled = self.moment >= settled_at(job.day, self.settle_days)
        rows = result.rows
        entry = WindowEntry(
            job.sms_type, job.day, fetched_at, rows, result.count_total, result.requests, settled
        )
        try:
            # Refused before anything is written: real and simulated rows never share a lake.
            self.manifest.claim(
                SOURCE_SIMULATOR if self.client.simulated else SOURCE_ESMS, self.privacy
            )
        except LakeError:
            self.fatal.set()
            raise
        try:
            if self.staging is not None:
                self.staging.add(result.sink.writer, entry)  # committed with the sync
            else:
                result.sink.writer.commit(
                    fetched_at=fetched_at,
                    count_total=result.count_total,
                    requests=result.requests,
                    settled=settled,
                )
                self.manifest.record(entry)
        except OSError as exc:
            raise self._cannot_write(job, exc) from exc
        return WindowReport(
            job.sms_type,
            job.day,
            "fetched",
            rows=rows,
            count_total=result.count_total,
            requests=result.requests,
            retries=result.retries,
            settled=settled,
            detail=job.reason,
        )


class Staging:
    """A table lake's verified windows, staged as local files until the sync's one commit."""

    def __init__(self, table: TableFormat, privacy: PrivacyPolicy | None = None):
        self.table = table
        #: The lake's policy: its rows' schema, and the facts each commit records.
        self.privacy = privacy or PrivacyPolicy("raw")
        self.entries: list[WindowEntry] = []
        self.windows: list[StagedWindow] = []
        self._folder = Path(tempfile.mkdtemp(prefix=".esms-staged-"))
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls, lake: LakeStore, wanted: str | None, *, new: bool, privacy: PrivacyPolicy | None = None
    ) -> Staging | None:
        """Settle the lake's format (refusing another); a staging for a table, None for Hive."""
        choose_table_format(lake, wanted, new=new)
        table = open_table(lake)
        return None if table is None else cls(table, privacy)

    def stored(self, first: date, last: date, types: list[int]) -> set[tuple[int, date]]:
        """Return the table's partitions holding rows, in the range."""
        return {
            (kind, day)
            for kind, day in self.table.partitions()
            if kind in types and first <= day <= last
        }

    def add(self, writer: PartitionWriter, entry: WindowEntry) -> None:
        """Stage the window's rows (its spill removed); committed by :meth:`commit`."""
        path = self._folder / f"{entry.sms_type}_{entry.date.isoformat()}.parquet"
        rows = writer.stage(path)
        staged = StagedWindow(
            entry.sms_type,
            entry.date,
            path if rows else None,
            rows,
            entry.fetched_at,
            entry.count_total,
            entry.requests,
            entry.settled,
        )
        with self._lock:
            self.windows.append(staged)
            self.entries.append(entry)

    def commit(self, manifest: Manifest) -> None:
        """Commit every staged window in one table transaction, then record them."""
        try:
            if self.windows:
                if _COMMIT_PAUSE in os.environ:  # the fault tests kill the sync here
                    time.sleep(float(os.environ[_COMMIT_PAUSE]))
                version = self.table.commit(
                    self.windows,
                    schema=table_schema_of(self.privacy),
                    facts=self.privacy.facts(),
                )
                logger.info("committed %d windows as version %s", len(self.windows), version)
                for entry in self.entries:
                    manifest.record(entry)
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


#: Seconds a sync sleeps before its table commit: for the tests that kill it there.
_COMMIT_PAUSE: Final = "ESMS_ANALYTICS_TEST_COMMIT_PAUSE"


def _stopped(job: _Job) -> WindowReport:
    return WindowReport(job.sms_type, job.day, "stopped", detail="not fetched: the sync stopped")


def _run(store: _WindowStore, plan: _Plan, *, workers: int, progress: bool) -> SyncReport:
    """Run the plan's jobs on ``workers`` threads until done, stopped, or a fatal error."""
    from tqdm.auto import tqdm

    report = SyncReport()
    total = plan.jobs()
    logger.info(
        "sync: %d windows, %d to fetch",
        plan.windows,
        total,
        extra={"event": "start", "windows": plan.windows, "to_fetch": total},
    )
    # However the work is spread over threads, at most `workers` requests are under way.
    in_flight = threading.BoundedSemaphore(workers)
    bar = tqdm(total=total, desc="sync", unit="window", disable=not progress or not total)
    # Windows run on one pool; the pages after each window's first on another, so a
    # day of many pages does not wait page by page while workers sit idle.
    page_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esms-pages")
    window_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esms-sync")
    pending: dict[Future[WindowReport], _Job] = {}
    finished = False
    try:
        decisions = plan.decisions()

        def submit(job: _Job) -> None:
            future = window_pool.submit(store.run, job, page_pool=page_pool, in_flight=in_flight)
            pending[future] = job

        # A few windows queue behind the running ones: enough to keep every worker busy.
        for job in _next_jobs(decisions, report, 2 * workers):
            submit(job)
        # A fatal error is not a stop: it is raised below, when its window's future is read.
        while pending and not store.client.stop.is_set():
            done, _ = wait(pending, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                del pending[future]
                window = _result(future, report)  # a fatal error is raised here
                report.windows.append(window)
                _log_window(window)
                bar.update()
                bar.set_postfix(rows=f"{report.rows:,}", requests=store.client.requests_made)
                for job in _next_jobs(decisions, report, 1):
                    submit(job)
        finished = not pending and not store.client.stop.is_set()
        if not finished:
            report.stopped = True
            _account_for_the_rest(store, pending, plan.windows, report)
    finally:
        # Windows still under way are abandoned, not awaited: their requests were stopped,
        # or end at the client's timeout, and the closed gate keeps them from writing.
        store.gate.close()
        window_pool.shutdown(wait=finished, cancel_futures=True)
        page_pool.shutdown(wait=finished, cancel_futures=True)
        bar.close()
    return report


def _log_window(window: WindowReport) -> None:
    """One ``window`` event a window, its numbers as fields (``--log-format json``)."""
    logger.info(
        "sms_type=%d date=%s %s: %d rows, %d requests (%d retries) in %.2fs",
        window.sms_type,
        window.date,
        window.status,
        window.rows,
        window.requests,
        window.retries,
        window.seconds,
        extra={
            "event": "window",
            "sms_type": window.sms_type,
            "date": window.date.isoformat(),
            "status": window.status,
            "rows": window.rows,
            "requests": window.requests,
            "retries": window.retries,
            "seconds": round(window.seconds, 3),
        },
    )


def _result(future: Future[WindowReport], report: SyncReport) -> WindowReport:
    """Return the window's report; a lake error is told what this sync stored before it."""
    try:
        return future.result()
    except LakeError as exc:
        if not isinstance(exc.__cause__, OSError):
            raise
        stored = report.count("fetched")
        raise LakeError(
            f"{exc}; the {stored} windows stored before it are kept: fix the lake (free some "
            "space?) and run the same command again to resume",
            lake=exc.lake,
            partition=exc.partition,
        ) from exc


def _next_jobs(
    decisions: Iterator[_Job | WindowReport], report: SyncReport, wanted: int
) -> list[_Job]:
    """Take up to ``wanted`` jobs from the plan, filing the skipped windows met on the way."""
    taken: list[_Job] = []
    while len(taken) < wanted and (decision := next(decisions, None)) is not None:
        if isinstance(decision, WindowReport):
            report.windows.append(decision)
        else:
            taken.append(decision)
    return taken


def _account_for_the_rest(
    store: _WindowStore,
    pending: dict[Future[WindowReport], _Job],
    plan_windows: int,
    report: SyncReport,
) -> None:
    """After a stop: what finished stays reported, everything else is ``stopped``."""
    store.gate.close()  # from here on, no window can still be writing
    for future, job in pending.items():
        finished = future.done() and not future.cancelled() and future.exception() is None
        report.windows.append(future.result() if finished else _stopped(job))
        future.cancel()
    # The windows never reached are counted, not listed: after a stop, the sync returns now.
    report.not_started = plan_windows - len(report.windows)
