"""Fetch whole windows: every page, decoded, checked against ``CountTotal``.

A window is complete when its unique rows equal the ``CountTotal`` the
service reported at the start and at the end of the walk. Rows arriving
while a window is paged (newest first) push older rows onto the next page, so
the walk sees some rows twice and misses the newcomers: rows seen again on
another page are dropped and the window is walked again, a bounded number of
times. Identical rows on one page are distinct rows (the service counts them
in ``CountTotal``) and are all kept.

Every row must belong to the window asked for: its SmsType the one asked
and its ``SentTime`` inside the window, give or take :data:`EDGE_TOLERANCE`;
otherwise the window fails with :class:`~esms_analytics.errors.AnswerError`
and nothing of it is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Generic, Protocol, TypeVar

import polars as pl

from esms_analytics.arguments import day_range, sms_type_list, to_date
from esms_analytics.client import DEFAULT_PAGES_AHEAD, EsmsClient, Window
from esms_analytics.decode import decode_raw, empty_frame
from esms_analytics.errors import AnswerError, ConfigError, DecodeError, IncompleteWindowError
from esms_analytics.wire import MAX_PAGE_SIZE

logger = logging.getLogger("esms_analytics")

#: How many walks of one window before it is reported incomplete.
DEFAULT_PASSES = 3
#: Pages are decoded in batches of about this many rows: one decode has a fixed cost of
#: about half a millisecond (planning its one query), which decoding every 500-row page on
#: its own pays 100 times per batch: about 1.5x the CPU in all (see BENCHMARKS.md, notes).
DECODE_BATCH_ROWS = 50_000
#: Row order inside a window: stable across fetches, so equal data gives equal files.
#: A window that streams (``sync``) is sorted by it batch by batch, the batches kept in
#: the order they came (see :class:`~esms_analytics.lake.PartitionWriter`): a window
#: of at most one batch, the usual day, is sorted whole.
ROW_ORDER = ("sent_at", "sms_id", "reference_id", "phone")
#: How far a row's ``SentTime`` may lie outside the creation-time window it was fetched for.
#: ``From``/``To`` filter on creation; a message is sent after its queueing and, for brand
#: names, a review of up to half an hour, so a row created at 23:59 may be sent after
#: midnight. Two hours also cover a skewed clock; a row further out is not of this window.
EDGE_TOLERANCE: Final = timedelta(hours=2)
#: A walk's column numbering identical rows of one page (0, 1, ...), dropped after dedup.
_COPY: Final = "_copy"


@dataclass(frozen=True)
class WindowResult:
    """The outcome of fetching one (SmsType, window).

    ``complete`` is true when ``frame.height == count_total``; otherwise the
    window changed on every pass and ``frame`` holds the last pass's rows.
    """

    sms_type: int
    window: Window
    frame: pl.DataFrame
    count_total: int
    requests: int
    passes: int
    duplicates_dropped: int
    #: Of ``requests``, those that repeated a page after a transient fault.
    retries: int = 0

    @property
    def complete(self) -> bool:
        """Unique rows equal the service's CountTotal."""
        return self.frame.height == self.count_total


class RowSink(Protocol):
    """Where a walk puts its rows: each batch decoded, checked, and never seen before."""

    def write(self, frame: pl.DataFrame) -> None:
        """Take a batch of new rows (:data:`~esms_analytics.SCHEMA`, in no order)."""

    def discard(self) -> None:
        """Drop every row taken; called for a pass that is not kept (and safe to repeat)."""


SinkT = TypeVar("SinkT", bound=RowSink)


@dataclass(frozen=True)
class WindowStream(Generic[SinkT]):
    """The outcome of :func:`stream_window`: its last pass's rows are in ``sink``.

    The caller owns ``sink``: it keeps the rows (a complete window) or discards them.
    """

    sms_type: int
    window: Window
    sink: SinkT
    rows: int
    count_total: int
    requests: int
    passes: int
    duplicates_dropped: int
    #: Of ``requests``, those that repeated a page after a transient fault.
    retries: int = 0

    @property
    def complete(self) -> bool:
        """Unique rows equal the service's CountTotal."""
        return self.rows == self.count_total


def fetch_window(
    client: EsmsClient,
    sms_type: int,
    window: Window,
    *,
    page_size: int = MAX_PAGE_SIZE,
    max_passes: int = DEFAULT_PASSES,
    pages: Executor | None = None,
    in_flight: threading.Semaphore | None = None,
    pages_ahead: int = DEFAULT_PAGES_AHEAD,
) -> WindowResult:
    """Fetch one window completely, or report after ``max_passes`` that it kept changing.

    With ``pages`` (a thread pool), the pages after the first, whose number the
    first page's ``CountTotal`` gives, are fetched concurrently on it, at most
    ``pages_ahead`` submitted beyond the page being read; ``in_flight`` bounds
    the requests under way at once across every caller.

    Each response is parsed to a frame of strings as it arrives and decoded in
    batches of :data:`DECODE_BATCH_ROWS`, so memory holds the typed rows of one
    window and at most one batch of raw strings, never the window's JSON.
    (:func:`stream_window` holds not even the typed rows: ``sync`` uses it.)
    """
    stream = stream_window(
        client,
        sms_type,
        window,
        _Frames,
        page_size=page_size,
        max_passes=max_passes,
        pages=pages,
        in_flight=in_flight,
        pages_ahead=pages_ahead,
    )
    return WindowResult(
        sms_type=sms_type,
        window=window,
        frame=stream.sink.frame().sort(ROW_ORDER, nulls_last=True),
        count_total=stream.count_total,
        requests=stream.requests,
        passes=stream.passes,
        duplicates_dropped=stream.duplicates_dropped,
    )


def stream_window(
    client: EsmsClient,
    sms_type: int,
    window: Window,
    open_sink: Callable[[], SinkT],
    *,
    page_size: int = MAX_PAGE_SIZE,
    max_passes: int = DEFAULT_PASSES,
    pages: Executor | None = None,
    in_flight: threading.Semaphore | None = None,
    pages_ahead: int = DEFAULT_PAGES_AHEAD,
) -> WindowStream[SinkT]:
    """Walk one window like :func:`fetch_window`, handing its rows to a sink as they come.

    Each pass opens a sink with ``open_sink`` and writes every batch of
    :data:`DECODE_BATCH_ROWS` rows to it once decoded, checked and stripped of
    the rows already seen (found by a hash of each row, 8 bytes a row, instead
    of by holding the rows). A pass that is not kept, or that raises, has its
    sink discarded; the last pass's sink is returned, its rows kept.
    """
    requests = retries = 0
    for number in range(1, max_passes + 1):
        sink = open_sink()
        try:
            walk = _walk(
                client,
                sms_type,
                window,
                sink,
                page_size=page_size,
                pool=pages,
                in_flight=in_flight,
                ahead=pages_ahead,
            )
        except BaseException:
            sink.discard()
            raise
        requests += walk.requests
        retries += walk.retries
        stream = WindowStream(
            sms_type=sms_type,
            window=window,
            sink=sink,
            rows=walk.unique_rows,
            count_total=walk.last_count,
            requests=requests,
            passes=number,
            duplicates_dropped=walk.rows - walk.unique_rows,
            retries=retries,
        )
        if (stream.complete and walk.first_count == walk.last_count) or number == max_passes:
            return stream
        sink.discard()
        logger.info(
            "SmsType=%d window %s changed while paging (CountTotal %d -> %d, %d unique rows); "
            "fetching it again (pass %d of %d)",
            sms_type,
            window,
            walk.first_count,
            walk.last_count,
            walk.unique_rows,
            number + 1,
            max_passes,
        )
    raise ConfigError(f"max_passes must be at least 1, got {max_passes}")


class _Frames:
    """A sink that holds the rows in memory, for :func:`fetch_window`."""

    def __init__(self) -> None:
        self.frames: list[pl.DataFrame] = []

    def write(self, frame: pl.DataFrame) -> None:
        self.frames.append(frame)

    def discard(self) -> None:
        self.frames = []

    def frame(self) -> pl.DataFrame:
        return pl.concat(self.frames) if self.frames else empty_frame()


class _SeenRows:
    """What a walk has seen, as one 64-bit hash per distinct (row, copy number on its page).

    8 bytes a row, kept sorted, instead of the rows themselves. Two distinct rows
    whose hashes collide count as one: the walk then finds fewer unique rows than
    ``CountTotal``, so the window is walked again and, should it collide every
    time, reported incomplete; it is never stored short.
    """

    def __init__(self) -> None:
        self.hashes = pl.Series(dtype=pl.UInt64)
        #: Rows offered, duplicates included.
        self.rows = 0

    def new(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Return the rows of ``frame`` not seen before, :data:`_COPY` dropped; remember them."""
        self.rows += frame.height
        keys = _row_hashes(frame)
        fresh = keys.is_first_distinct()
        if self.hashes.len():
            at = self.hashes.search_sorted(keys).clip(upper_bound=self.hashes.len() - 1)
            fresh &= self.hashes.gather(at) != keys
        self.hashes = pl.concat([self.hashes, keys.filter(fresh)]).sort()
        return frame.filter(fresh).drop(_COPY)

    @property
    def unique(self) -> int:
        """Distinct rows seen."""
        return self.hashes.len()


def _row_hashes(frame: pl.DataFrame) -> pl.Series:
    """Hash each row, every column with :data:`_COPY`: copies on one page differ."""
    return frame.hash_rows()


@dataclass(frozen=True)
class _Walk:
    """One walk of a window's pages: how many rows it saw, how many distinct, the counts."""

    rows: int
    unique_rows: int
    first_count: int
    last_count: int
    requests: int
    retries: int


def _walk(
    client: EsmsClient,
    sms_type: int,
    window: Window,
    sink: RowSink,
    *,
    page_size: int,
    pool: Executor | None,
    in_flight: threading.Semaphore | None,
    ahead: int,
) -> _Walk:
    seen = _SeenRows()
    batch: list[pl.DataFrame] = []
    counts: list[int] = []
    requests = retries = 0

    def decode_batch() -> None:
        rows = seen.new(_decode(client, batch, sms_type, window))
        if rows.height:
            sink.write(rows)
        batch.clear()

    for page in client.iter_pages(
        window, sms_type, page_size=page_size, pool=pool, in_flight=in_flight, ahead=ahead
    ):
        requests += page.attempts
        retries += page.attempts - 1
        counts.append(page.count_total)
        batch.append(page.raw)
        if sum(raw.height for raw in batch) >= DECODE_BATCH_ROWS:
            decode_batch()
    if batch:
        decode_batch()
    return _Walk(seen.rows, seen.unique, counts[0], counts[-1], requests, retries)


def _decode(
    client: EsmsClient, batch: list[pl.DataFrame], sms_type: int, window: Window
) -> pl.DataFrame:
    """Decode a batch of pages, number the copies on each page, check the rows belong."""
    frame = _number_copies(_decode_redacted(client, pl.concat(batch)), batch)
    _check_rows(client, frame, sms_type, window)
    return frame


def _number_copies(frame: pl.DataFrame, pages: list[pl.DataFrame]) -> pl.DataFrame:
    """Add :data:`_COPY`: 0 for a row's first occurrence on its page, 1 for the next..."""
    if not frame.is_duplicated().any():
        return frame.with_columns(pl.lit(0, pl.UInt32).alias(_COPY))
    page = pl.concat(
        [
            pl.repeat(number, raw.height, dtype=pl.UInt32, eager=True)
            for number, raw in enumerate(pages)
        ]
    )
    return frame.with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).over(*frame.columns, page).alias(_COPY)
    )


def _check_rows(client: EsmsClient, frame: pl.DataFrame, sms_type: int, window: Window) -> None:
    """Raise :class:`AnswerError` for rows of another SmsType or sent outside the window."""
    asked = f"SmsType={sms_type} window {window}"
    foreign = frame.filter(pl.col("sms_type") != sms_type)
    if foreign.height:
        types = ", ".join(str(code) for code in sorted(foreign["sms_type"].unique()))
        raise AnswerError(
            client.redact(
                f"{asked}: eSMS sent {foreign.height:,} row(s) of SmsType {types} (the first "
                f"with ReferenceId {foreign['reference_id'][0]!r}); the answer is not what was "
                "asked, so the window is not stored; check base_url, or report it to eSMS"
            ),
            sms_type=sms_type,
            window=str(window),
        )
    earliest, latest = window.start - EDGE_TOLERANCE, window.end + EDGE_TOLERANCE
    outside = frame.filter(~pl.col("sent_at").is_between(earliest, latest))
    if outside.height:
        first, last = outside.select(
            pl.col("sent_at").min().alias("first"), pl.col("sent_at").max().alias("last")
        ).row(0)
        raise AnswerError(
            client.redact(
                f"{asked}: eSMS sent {outside.height:,} row(s) sent {first:%Y-%m-%d %H:%M:%S}"
                f"..{last:%Y-%m-%d %H:%M:%S}, outside the window (give or take "
                f"{EDGE_TOLERANCE}, EDGE_TOLERANCE; the first with ReferenceId "
                f"{outside['reference_id'][0]!r}); a server that ignores From/To answers so; "
                "the window is not stored; check base_url, or report it to eSMS"
            ),
            sms_type=sms_type,
            window=str(window),
        )


def _decode_redacted(client: EsmsClient, raw: pl.DataFrame) -> pl.DataFrame:
    """Decode; a decode error quotes a server's value, so it is redacted."""
    try:
        return decode_raw(raw)
    except DecodeError as exc:
        value = client.redact(exc.value) if isinstance(exc.value, str) else exc.value
        # Not chained: the original's message quotes the value unredacted.
        raise DecodeError(
            field=exc.field,
            value=value,
            reference_id=client.redact(exc.reference_id),
            rows=exc.rows,
            expected=exc.expected,
        ) from None


def fetch_days(
    client: EsmsClient,
    start: date | str,
    end: date | str | None = None,
    *,
    sms_types: Sequence[int] | None = None,
    page_size: int = MAX_PAGE_SIZE,
    progress: bool = False,
) -> pl.DataFrame:
    """Every message created on the days ``start``..``end`` (inclusive), one frame.

    Each (type, day) is fetched as one window, checked against ``CountTotal``
    and decoded to the canonical schema (:data:`~esms_analytics.SCHEMA`).
    ``end`` defaults to ``start``; ``sms_types`` to every type.

    Raises
    ------
    IncompleteWindowError
        Rather than return a window with a gap.

    Examples
    --------
    >>> from datetime import timedelta
    >>> from esms_analytics.simulator import Simulator
    >>> with Simulator(daily_volume=40, days=3) as sim, sim.client() as client:
    ...     frame = fetch_days(client, sim.today - timedelta(days=2), sim.today - timedelta(days=1),
    ...                        sms_types=[2])
    >>> frame.columns[:4], frame["sms_type"].unique().to_list()
    (['sms_id', 'reference_id', 'campaign', 'content'], [2])
    """
    from tqdm.auto import tqdm

    first = to_date(start)
    windows = [
        (code, Window.for_day(day))
        for day in day_range(first, to_date(end) if end is not None else first)
        for code in sms_type_list(sms_types)
    ]
    frames = []
    with tqdm(total=len(windows), desc="fetch", unit="window", disable=not progress) as bar:
        for sms_type, window in windows:
            result = fetch_window(client, sms_type, window, page_size=page_size)
            if not result.complete:
                raise IncompleteWindowError(
                    sms_type=sms_type,
                    window=str(window),
                    passes=result.passes,
                    count_total=result.count_total,
                    unique_rows=result.frame.height,
                )
            frames.append(result.frame)
            bar.update()
            bar.set_postfix(rows=sum(frame.height for frame in frames))
    return pl.concat(frames) if frames else empty_frame()
