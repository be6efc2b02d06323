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
share the client's rate limit; memory holds one window per worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final, Literal

from esms_analytics.arguments import day_range, sms_type_list, to_date
from esms_analytics.client import EsmsClient, Window
from esms_analytics.codes import VN_TZ
from esms_analytics.errors import AuthError, ConfigError, EsmsError
from esms_analytics.lake import Manifest, WindowEntry, open_lake, partition_files, write_partition
from esms_analytics.store import LakeLocation, LakeStore
from esms_analytics.windows import DEFAULT_PASSES, WindowResult, fetch_window
from esms_analytics.wire import MAX_PAGE_SIZE

logger = logging.getLogger("esms_analytics")

WindowStatus = Literal["fetched", "skipped", "incomplete", "failed"]
DEFAULT_SETTLE_DAYS: Final = 3
#: A re-fetch returning fewer than this share of the rows a window has stored is refused
#: without ``allow_shrink``. Statuses change and rows are never deleted on eSMS's side, so
#: a window that shrinks by half is a wrong answer far more often than a true one.
SHRINK_LIMIT: Final = 0.5


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


@dataclass
class SyncReport:
    """The outcome of :func:`sync`: one :class:`WindowReport` per window in the range."""

    windows: list[WindowReport] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when no window is incomplete or failed."""
        return all(window.status in ("fetched", "skipped") for window in self.windows)

    @property
    def requests(self) -> int:
        """HTTP requests made, retries included."""
        return sum(window.requests for window in self.windows)

    @property
    def rows(self) -> int:
        """Rows written by this sync."""
        return sum(window.rows for window in self.windows if window.status == "fetched")

    def count(self, status: WindowStatus) -> int:
        """How many windows ended with ``status``."""
        return sum(window.status == status for window in self.windows)

    def summary(self) -> str:
        """One line for people, then one per window that did not complete."""
        lines = [
            f"{len(self.windows)} windows: {self.count('fetched')} fetched, "
            f"{self.count('skipped')} skipped (settled), {self.count('incomplete')} incomplete, "
            f"{self.count('failed')} failed; {self.rows:,} rows written, "
            f"{self.requests:,} requests"
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

    Returns
    -------
    SyncReport
        ``report.complete`` is true when every window is stored whole.
    """
    first, last = to_date(start), to_date(end)
    days = day_range(first, last)
    types = sms_type_list(sms_types)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if settle_days < 0:
        raise ConfigError(f"settle_days cannot be negative, got {settle_days}")
    moment = (now or datetime.now(VN_TZ)).astimezone(VN_TZ)
    if last > moment.date():
        raise ConfigError(
            f"--to {last} is in the future (today is {moment.date()} in Vietnam); "
            "messages cannot have been created then"
        )
    lake_store = open_lake(lake, create=True, storage_options=storage_options)
    owns_client = client is None
    esms = client or EsmsClient()
    try:
        with lake_store.lock():
            if removed := lake_store.clear_litter():
                logger.info("removed %d temporary files left by an interrupted sync", removed)
            manifest = Manifest(lake_store)
            stored = {
                (file.sms_type, file.date)
                for file in partition_files(lake_store, start=first, end=last, sms_types=types)
            }
            todo, report = _plan(stored, manifest, days, types, refresh=refresh)
            logger.info(
                "sync %s..%s: %d windows to fetch, %d settled",
                first,
                last,
                len(todo),
                len(report.windows),
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
            )
            report.windows += _run(store, todo, workers=workers, progress=progress)
    finally:
        if owns_client:
            esms.close()
    report.windows.sort(key=lambda window: (window.date, window.sms_type))
    return report


@dataclass(frozen=True)
class _Job:
    """A window to fetch, and why."""

    sms_type: int
    day: date
    reason: str


def _plan(
    stored: set[tuple[int, date]],
    manifest: Manifest,
    days: list[date],
    types: list[int],
    *,
    refresh: bool,
) -> tuple[list[_Job], SyncReport]:
    """Plan the windows to fetch, and a report holding the settled ones skipped."""
    todo, report = [], SyncReport()
    for day in days:
        for sms_type in types:
            entry = manifest.get(sms_type, day)
            reason = _why_fetch(stored, entry, refresh)
            if reason is not None:
                todo.append(_Job(sms_type, day, reason))
                continue
            assert entry is not None
            report.windows.append(
                WindowReport(
                    sms_type,
                    day,
                    "skipped",
                    rows=entry.rows,
                    count_total=entry.count_total,
                    settled=True,
                    detail="settled",
                )
            )
    return todo, report


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
    #: Set when the sync must stop: windows not yet started are not fetched.
    stop: threading.Event = field(default_factory=threading.Event)

    def run(
        self, job: _Job, *, page_pool: Executor, in_flight: threading.Semaphore
    ) -> WindowReport:
        """Fetch ``job``'s window and, when it is complete, replace its partition."""
        if self.stop.is_set():
            return WindowReport(job.sms_type, job.day, "failed", detail="not started: sync stopped")
        try:
            result = fetch_window(
                self.client,
                job.sms_type,
                Window.for_day(job.day),
                page_size=self.page_size,
                max_passes=self.max_passes,
                pages=page_pool,
                in_flight=in_flight,
                pages_ahead=self.pages_ahead,
            )
        except AuthError:
            self.stop.set()
            raise
        except EsmsError as exc:
            logger.error("sms_type=%d date=%s failed: %s", job.sms_type, job.day, exc)
            return WindowReport(job.sms_type, job.day, "failed", detail=str(exc))
        if not result.complete:
            return WindowReport(
                job.sms_type,
                job.day,
                "incomplete",
                rows=result.frame.height,
                count_total=result.count_total,
                requests=result.requests,
                detail=f"CountTotal {result.count_total} but {result.frame.height} unique rows "
                f"after {result.passes} passes; the old partition is kept",
            )
        if (shrunk := self._shrunk(job, result)) is not None:
            return shrunk
        return self._store(job, result)

    def _shrunk(self, job: _Job, result: WindowResult) -> WindowReport | None:
        """Report a re-fetch far smaller than what is stored, unless shrinking is allowed."""
        entry = self.manifest.get(job.sms_type, job.day)
        if self.allow_shrink or entry is None or job.reason == "file missing":
            return None
        rows = result.frame.height
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
            detail=detail,
        )

    def _store(self, job: _Job, result: WindowResult) -> WindowReport:
        fetched_at = datetime.now(VN_TZ)
        settled = self.moment >= settled_at(job.day, self.settle_days)
        rows = result.frame.height
        write_partition(self.lake, job.sms_type, job.day, result.frame, fetched_at=fetched_at)
        self.manifest.record(
            WindowEntry(
                job.sms_type,
                job.day,
                fetched_at,
                rows,
                result.count_total,
                result.requests,
                settled,
            )
        )
        return WindowReport(
            job.sms_type,
            job.day,
            "fetched",
            rows=rows,
            count_total=result.count_total,
            requests=result.requests,
            settled=settled,
            detail=job.reason,
        )


def _run(
    store: _WindowStore, todo: list[_Job], *, workers: int, progress: bool
) -> list[WindowReport]:
    """Run every job on ``workers`` threads; the first fatal error stops the rest."""
    from tqdm.auto import tqdm

    # However the work is spread over threads, at most `workers` requests are under way.
    in_flight = threading.BoundedSemaphore(workers)
    results: list[WindowReport] = []
    bar = tqdm(total=len(todo), desc="sync", unit="window", disable=not progress or not todo)
    # Windows run on one pool; the pages after each window's first run on another, so a
    # day of many pages does not wait page by page while workers sit idle.
    with (
        bar,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esms-pages") as page_pool,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esms-sync") as window_pool,
    ):
        pending = {
            window_pool.submit(store.run, job, page_pool=page_pool, in_flight=in_flight)
            for job in todo
        }
        rows = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                if (error := future.exception()) is not None:
                    store.stop.set()
                    for other in pending:
                        other.cancel()
                    raise error
                window = future.result()
                results.append(window)
                rows += window.rows if window.status == "fetched" else 0
                bar.update()
                bar.set_postfix(
                    rows=f"{rows:,}", requests=store.client.requests_made, refresh=False
                )
    return results
