"""A dlt source: the sync's verified windows, loaded into any warehouse dlt reaches.

Each (message type, Vietnam-local creation day) is fetched as one window and
checked against ``CountTotal`` exactly as :func:`~esms_analytics.sync` checks
it (:func:`~esms_analytics.windows.fetch_window`). A complete window becomes
one Arrow table with the lake's columns; an incomplete one is never loaded.

Loading uses dlt's ``merge`` disposition with the ``delete-insert`` strategy
and ``merge_key=("sms_type", "date")``: dlt deletes the destination's rows of
every (type, day) in the load, then inserts the new rows, in one transaction,
so a day fetched again replaces its rows (statuses that changed arrive) and a
day is never duplicated. dlt's resource state remembers each day fetched and
whether it had settled then: settled days are not asked again, the settle
window is, as in the sync.

What delete-insert cannot do is delete a day whose new answer has no rows: no
row carries its key. eSMS never deletes history, and the sync refuses such a
shrink (see :data:`~esms_analytics.sync.SHRINK_LIMIT`); the source refuses it
the same way: a re-fetch far smaller than the rows loaded is not loaded, is
logged, and stays unsettled, to be asked again on the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any, Final

import dlt
import polars as pl
import pyarrow as pa
from dlt.sources import DltResource

from esms_analytics.arguments import day_range, sms_type_list, to_date
from esms_analytics.client import EsmsClient, Window
from esms_analytics.codes import SMS_TYPES, VN_TZ
from esms_analytics.errors import ConfigError
from esms_analytics.lake import LAKE_SCHEMA
from esms_analytics.sync import DEFAULT_SETTLE_DAYS, SHRINK_LIMIT, settled_at
from esms_analytics.windows import DEFAULT_PASSES, fetch_window
from esms_analytics.wire import MAX_PAGE_SIZE

logger = logging.getLogger("esms_analytics")

#: The destination key of one window: what delete-insert replaces.
MERGE_KEY: Final = ("sms_type", "date")


def resource_name(sms_type: int) -> str:
    """Name the table a message type loads into: ``sms_<label>`` (``sms_customer_care``)."""
    return f"sms_{SMS_TYPES[sms_type]}"


@dlt.source(name="esms")
def esms_source(
    start: date | str,
    end: date | str,
    *,
    sms_types: Sequence[int] | None = None,
    client: EsmsClient | None = None,
    settle_days: int = DEFAULT_SETTLE_DAYS,
    now: datetime | None = None,
    page_size: int = MAX_PAGE_SIZE,
    max_passes: int = DEFAULT_PASSES,
) -> list[DltResource]:
    """Load the eSMS history of the days ``start``..``end``, one resource per message type.

    Parameters
    ----------
    start, end : date or ``YYYY-MM-DD``
        Vietnam-local creation days, inclusive.
    sms_types : sequence of int, optional
        Message types to load; every type by default.
    client : EsmsClient, optional
        Default: ``EsmsClient()`` from the environment (``ESMS_API_KEY``,
        ``ESMS_SECRET_KEY``), closed when the last resource is done.
    settle_days : int
        Days after a day ends before its statuses count as final; a day loaded
        earlier than that is fetched again on the next run.
    now : datetime, optional
        The current moment, for deciding what has settled; default the clock.
    page_size, max_passes : int
        As for :func:`~esms_analytics.sync`.

    Examples
    --------
    >>> import dlt  # doctest: +SKIP
    >>> pipeline = dlt.pipeline("esms", destination="duckdb", dataset_name="esms")  # doctest: +SKIP
    >>> pipeline.run(esms_source("2026-01-01", "2026-01-31", sms_types=[2]))  # doctest: +SKIP
    """
    first, last = to_date(start), to_date(end)
    days = day_range(first, last)
    types = sms_type_list(sms_types)
    if settle_days < 0:
        raise ConfigError(f"settle_days cannot be negative, got {settle_days}")
    shared = _SharedClient(client, users=len(types))
    options = _Options(settle_days, now, page_size, max_passes)
    return [
        dlt.resource(
            _windows(shared, sms_type, days, options),
            name=resource_name(sms_type),
            # A load replaces the rows of every (type, day) it carries.
            write_disposition={"disposition": "merge", "strategy": "delete-insert"},
            merge_key=list(MERGE_KEY),
        )
        for sms_type in types
    ]


class _Options:
    """What every resource of one source fetches with."""

    def __init__(self, settle_days: int, now: datetime | None, page_size: int, max_passes: int):
        self.settle_days = settle_days
        self.now = now
        self.page_size = page_size
        self.max_passes = max_passes

    def moment(self) -> datetime:
        return (self.now or datetime.now(VN_TZ)).astimezone(VN_TZ)


class _SharedClient:
    """One client for every resource of a source: they share its rate limit.

    A client the source made itself is closed when its last resource is done.
    """

    def __init__(self, client: EsmsClient | None, *, users: int):
        self._given = client
        self._client: EsmsClient | None = client
        self._users = users
        self._lock = threading.Lock()

    def get(self) -> EsmsClient:
        with self._lock:
            if self._client is None:
                self._client = EsmsClient()
            return self._client

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._given is None and self._client is not None:
                self._client.close()
                self._client = None


def _windows(
    shared: _SharedClient, sms_type: int, days: list[date], options: _Options
) -> Iterator[pa.Table]:
    try:
        state: dict[str, Any] = dlt.current.resource_state().setdefault("days", {})
        moment = options.moment()
        for day in days:
            known = state.get(day.isoformat())
            if known is not None and known["settled"]:
                continue
            table = _verified(shared.get(), sms_type, day, options, known)
            if table is None:
                continue
            state[day.isoformat()] = {
                "rows": table.num_rows,
                "settled": moment >= settled_at(day, options.settle_days),
            }
            if table.num_rows:
                yield table
    finally:
        shared.release()


def _verified(
    client: EsmsClient,
    sms_type: int,
    day: date,
    options: _Options,
    known: dict[str, Any] | None,
) -> pa.Table | None:
    """Fetch a window's rows as Arrow, or None (logged) when they must not be loaded."""
    result = fetch_window(
        client,
        sms_type,
        Window.for_day(day),
        page_size=options.page_size,
        max_passes=options.max_passes,
    )
    where = f"sms_type={sms_type} date={day}"
    if not result.complete:
        logger.warning(
            "%s: CountTotal %d but %d unique rows after %d passes; not loaded, "
            "asked again on the next run",
            where,
            result.count_total,
            result.frame.height,
            result.passes,
        )
        return None
    if known is not None and result.frame.height < known["rows"] * SHRINK_LIMIT:
        logger.warning(
            "%s: the re-fetch returned %d rows but %d were loaded; not loaded (eSMS does "
            "not delete history: a wrong answer is likelier), asked again on the next run",
            where,
            result.frame.height,
            known["rows"],
        )
        return None
    return to_arrow(result.frame, day)


def to_arrow(frame: pl.DataFrame, day: date) -> pa.Table:
    """Give a window's decoded rows as the table dlt loads: the lake's columns, labels as text.

    The columns and their order are :data:`~esms_analytics.lake.LAKE_SCHEMA`'s
    (what :func:`~esms_analytics.read_lake` returns); the labels, Enums in
    Polars, load as plain strings, which every warehouse has.
    """
    with_day = frame.with_columns(pl.lit(day, pl.Date()).alias("date")).select(list(LAKE_SCHEMA))
    table = with_day.with_columns(pl.col(pl.Enum).cast(pl.String())).to_arrow()
    # The merge key is never null: said in the schema, as dlt's hints for a merge key say it.
    schema = pa.schema([field.with_nullable(field.name not in MERGE_KEY) for field in table.schema])
    return table.cast(schema)
