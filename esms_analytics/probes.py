"""Wide probes: find a sync's empty windows with one request per range of days.

A range of consecutive days of one SmsType (at most a calendar month) is asked
with a page of one row, to read its ``CountTotal``. A range of ``CountTotal``
0 is empty on every day; a busy range (at least one row a day on average) goes
to day windows at once; any other range is split in halves, and only the
halves with rows are split again, down to days. Probes decide emptiness only:
rows are always fetched by day windows, so the lake keeps one partition per
(type, Vietnam-local creation day). The count of a half is inferred from its
parent's minus its sibling's only to say that it has rows, never that it is
empty: an empty answer is always the service's own.

If a probe fails in any other way than a fatal error (a CodeResult the
toolkit cannot foresee, a service that refuses wide ranges), probing stops
for the rest of the sync, said once in the log, and every day not yet known
empty is fetched as a day window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Final

from esms_analytics.client import EsmsClient, Window
from esms_analytics.errors import (
    AnswerError,
    AuthError,
    EsmsError,
    ServiceUnreachableError,
    StoppedError,
)

logger = logging.getLogger("esms_analytics")

#: Rows asked of a probe: only its CountTotal is read.
PROBE_PAGE_SIZE: Final = 1
#: Runs shorter than this are fetched day by day: a probe of one day costs what its fetch costs.
MIN_PROBE_DAYS: Final = 3
#: A range with at least this many rows a day on average goes to day windows at once.
BUSY_ROWS_PER_DAY: Final = 1


@dataclass
class ProbeResult:
    """What the probes found: the (type, day) windows the service says are empty."""

    empty: set[tuple[int, date]] = field(default_factory=set)
    requests: int = 0
    #: Why probing stopped early (the service refused a range), or None.
    refused: str | None = None


def runs(days: Sequence[date]) -> Iterator[list[date]]:
    """Split sorted ``days`` into runs of consecutive days inside one calendar month."""
    run: list[date] = []
    for day in days:
        if run and (day - run[-1] != timedelta(days=1) or day.month != run[-1].month):
            yield run
            run = []
        run.append(day)
    if run:
        yield run


def find_empty(
    client: EsmsClient,
    candidates: Mapping[int, Sequence[date]],
    *,
    likely_busy: Callable[[int, date], bool] = lambda sms_type, day: False,
    workers: int = 4,
) -> ProbeResult:
    """Probe the runs of ``candidates`` (days by SmsType) and return the days found empty.

    A run shorter than :data:`MIN_PROBE_DAYS`, or for which ``likely_busy``
    (type, first day) is true, is left to day windows without a request.
    Authentication and unreachable-service errors are raised; a stop
    (``client.stop``) ends the probing with what is known.
    """
    result = ProbeResult()
    lock = threading.Lock()
    refused = threading.Event()
    #: Set by the first fatal error: the probes still queued are not sent.
    fatal = threading.Event()
    before = client.requests_made
    tasks = [
        (sms_type, run)
        for sms_type, days in candidates.items()
        for run in runs(sorted(days))
        if len(run) >= MIN_PROBE_DAYS and not likely_busy(sms_type, run[0])
    ]

    def count(sms_type: int, first: date, last: date) -> int | None:
        """CountTotal of the range; None when it is too large to page at one row a page."""
        window = Window(Window.for_day(first).start, Window.for_day(last).end)
        try:
            return client.get_page(window, sms_type, 1, PROBE_PAGE_SIZE).count_total
        except AnswerError:
            return None  # more rows than MAX_PAGES_PER_WINDOW pages of one: busy

    def settle(sms_type: int, first: date, last: date, rows: int | None) -> None:
        """Decide a range from its count: measured, inferred positive, or None (very many)."""
        if refused.is_set() or fatal.is_set():
            return
        days = (last - first).days + 1
        if rows == 0:
            with lock:
                result.empty.update((sms_type, first + timedelta(d)) for d in range(days))
            return
        if rows is None or days < MIN_PROBE_DAYS or rows >= BUSY_ROWS_PER_DAY * days:
            return  # busy, or too short to split: day windows
        middle = first + timedelta(days=days // 2 - 1)
        left = count(sms_type, first, middle)
        settle(sms_type, first, middle, left)
        rest = rows - left if left is not None else 0
        # A positive inferred count says "rows here"; emptiness is always asked.
        after = middle + timedelta(days=1)
        settle(sms_type, after, last, rest if rest > 0 else count(sms_type, after, last))

    def task(sms_type: int, run: list[date]) -> None:
        if refused.is_set() or fatal.is_set():
            return
        try:
            settle(sms_type, run[0], run[-1], count(sms_type, run[0], run[-1]))
        except (AuthError, ServiceUnreachableError):
            fatal.set()  # the same answer awaits every other probe: send no more
            raise
        except StoppedError:
            raise
        except EsmsError as exc:
            with lock:
                first_refusal = result.refused is None
                if first_refusal:
                    result.refused = str(exc)
            refused.set()
            if first_refusal:
                logger.warning(
                    "the service refused a wide range (%s); probing stops, every day is "
                    "asked on its own (sync(..., probes=False) / --no-probes skips probing)",
                    exc,
                )

    if tasks:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esms-probe") as pool:
            futures = [pool.submit(task, sms_type, run) for sms_type, run in tasks]
            error: BaseException | None = None
            for future in futures:
                try:
                    future.result()
                except StoppedError:
                    pass
                except BaseException as exc:  # the first fatal error is raised
                    error = error or exc
            if error is not None:
                raise error
    result.requests = client.requests_made - before
    return result
