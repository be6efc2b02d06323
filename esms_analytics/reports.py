"""Reports: delivery by any dimension, cost breakdowns, trends, carriers, failure hotspots.

Each report is written once, with Narwhals (``narwhals.stable.v2``), and runs
where the data is. It takes a Polars DataFrame or LazyFrame, a pandas
DataFrame, a DuckDB relation, a PySpark DataFrame, or a lake location (a path
or URL, meaning :func:`~esms_analytics.read_lake`), and returns a frame of the
kind it was given:

=======================================  =====================================
given                                    returned
=======================================  =====================================
Polars DataFrame or LazyFrame, a lake    ``polars.DataFrame`` (collected)
pandas DataFrame                         ``pandas.DataFrame``
DuckDB relation                          DuckDB relation (not yet executed)
PySpark DataFrame                        PySpark DataFrame (still distributed)
=======================================  =====================================

Columns, row order, intervals, flags and null handling are the same on every
engine; labels are strings, days are dates, as each engine spells them. The
frame needs the lake's columns a report reads (:data:`~esms_analytics.LAKE_SCHEMA`);
``date`` may be left out on Polars and pandas, where it is derived from
``sent_at``.

Definitions used throughout:

- **delivered** rows have ``send_result == 1``, **failed** ``send_result == 0``
  (rejected messages included), **pending** everything else (no final report yet).
- **delivery_rate** = delivered / (delivered + failed). Pending rows are left
  out, so early numbers are not dragged down; the rate is null when no row
  is final yet, never 0 or NaN. ``delivery_rate_low``/``_high`` is the 95%
  Wilson score interval, honest for small campaigns.
- **provisional** is true while any row may still change (``is_final`` false).
- Costs are ``sell_price`` as eSMS reports it, in VND: what the data says
  about billing failed messages is what the reports show.
- The **day** of a row is its partition ``date`` (Vietnam creation day) when
  present, else the Vietnam date of ``sent_at``. A **week** starts on Monday.
- Time dimensions (``date``, ``week``, ``month``, a trend's ``period``) sort
  chronologically, first; then the report's own order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import narwhals.stable.v2 as nw
import polars as pl

from esms_analytics.arguments import (
    Campaigns,
    DateLike,
    SmsTypes,
    campaign_list,
    count,
    date_bounds,
    name_list,
    one_of,
    optional_count,
    sms_type_codes,
)
from esms_analytics.codes import TIME_ZONE
from esms_analytics.errors import ConfigError
from esms_analytics.lake import read_lake, reading_lake

NO_CAMPAIGN: Final = "(no campaign)"
TOTAL_LABEL: Final = "(total)"
Z_95: Final = 1.959963984540054

#: The Polars frames the bundle, the plots and the terminal tables work on.
AnyFrame: TypeAlias = pl.LazyFrame | pl.DataFrame
#: What a report takes: a frame of any supported engine, or a lake's path or URL.
ReportInput: TypeAlias = "nw.typing.IntoFrame | str | os.PathLike[str]"
#: What a report returns: a frame of the kind it was given (see the module docstring).
ReportFrame: TypeAlias = Any

Dimension = Literal["campaign", "template", "sms_type", "carrier", "date", "week", "month"]
#: The dimensions :func:`delivery` and :func:`cost_breakdown` break down by.
DIMENSIONS: Final[tuple[Dimension, ...]] = (
    "campaign",
    "template",
    "sms_type",
    "carrier",
    "date",
    "week",
    "month",
)
TIME_DIMENSIONS: Final = frozenset({"date", "week", "month", "period"})
TrendEvery = Literal["1d", "1w", "1mo"]
#: A trend's period length and the dimension it truncates the day to.
TREND_PERIODS: Final[dict[str, Dimension]] = {"1d": "date", "1w": "week", "1mo": "month"}
TrendBy = Literal["carrier", "sms_type", "campaign"]
TREND_BY: Final[tuple[TrendBy, ...]] = ("carrier", "sms_type", "campaign")

#: The dtype of each dimension column, on every engine.
DIMENSION_DTYPES: Final[dict[str, nw.dtypes.DType]] = {
    "campaign": nw.String(),
    "template": nw.String(),
    "sms_type": nw.String(),
    "carrier": nw.String(),
    "date": nw.Date(),
    "week": nw.Date(),
    "month": nw.Date(),
    "period": nw.Date(),
}
DELIVERY_MEASURES: Final = nw.Schema(
    {
        "messages": nw.Int64(),
        "delivered": nw.Int64(),
        "failed": nw.Int64(),
        "pending": nw.Int64(),
        "delivery_rate": nw.Float64(),
        "delivery_rate_low": nw.Float64(),
        "delivery_rate_high": nw.Float64(),
        "pending_share": nw.Float64(),
        "first_sent": nw.Datetime("us", TIME_ZONE),
        "last_sent": nw.Datetime("us", TIME_ZONE),
        "provisional": nw.Boolean(),
    }
)
COST_MEASURES_NW: Final = nw.Schema(
    {
        "messages": nw.Int64(),
        "delivered": nw.Int64(),
        "segments": nw.Int64(),
        "cost_vnd": nw.Float64(),
        "cost_delivered_vnd": nw.Float64(),
        "cost_failed_vnd": nw.Float64(),
        "cost_per_delivered_vnd": nw.Float64(),
        "share": nw.Float64(),
    }
)
TREND_MEASURES_NW: Final = nw.Schema(
    {
        "messages": nw.Int64(),
        "delivered": nw.Int64(),
        "failed": nw.Int64(),
        "pending": nw.Int64(),
        "delivery_rate": nw.Float64(),
        "cost_vnd": nw.Float64(),
    }
)
CARRIER_SCHEMA_NW: Final = nw.Schema(
    {
        "carrier": nw.String(),
        "sms_type": nw.String(),
        "messages": nw.Int64(),
        "delivered": nw.Int64(),
        "failed": nw.Int64(),
        "pending": nw.Int64(),
        "delivery_rate": nw.Float64(),
        "delivery_rate_low": nw.Float64(),
        "delivery_rate_high": nw.Float64(),
        "cost_vnd": nw.Float64(),
        "cost_per_delivered_vnd": nw.Float64(),
        "volume_share": nw.Float64(),
    }
)
HOTSPOT_SCHEMA_NW: Final = nw.Schema(
    {
        "campaign": nw.String(),
        "carrier": nw.String(),
        "messages": nw.Int64(),
        "delivered": nw.Int64(),
        "failed": nw.Int64(),
        "delivery_rate": nw.Float64(),
        "delivery_rate_low": nw.Float64(),
        "delivery_rate_high": nw.Float64(),
        "campaign_delivery_rate": nw.Float64(),
        "cost_failed_vnd": nw.Float64(),
    }
)
# The measures of the two reports whose dimensions are fixed (for the registry).
CARRIER_MEASURES: Final = nw.Schema(
    {n: t for n, t in CARRIER_SCHEMA_NW.items() if n not in ("carrier", "sms_type")}
)
HOTSPOT_MEASURES: Final = nw.Schema(
    {
        **{n: t for n, t in HOTSPOT_SCHEMA_NW.items() if n not in ("campaign", "carrier")},
        # by="template" names the comparison after its dimension.
        "template_delivery_rate": nw.Float64(),
    }
)
HotspotBy = Literal["campaign", "template"]
HOTSPOT_BY: Final[tuple[HotspotBy, ...]] = ("campaign", "template")
RECIPIENTS_MEASURES: Final = nw.Schema({"recipients": nw.Int64(), "messages": nw.Int64()})
#: Where a recipient is read, best first: the pseudonym of a pseudonymised lake, then the
#: E.164 form (one person, however the number was written), then the number as stored.
RECIPIENT_COLUMNS: Final = ("phone_token", "phone_e164", "phone")
# The same schemas in Polars' spelling, for Polars users and tests.
DELIVERY_SCHEMA: Final = pl.Schema({"campaign": pl.String(), **DELIVERY_MEASURES.to_polars()})
COST_MEASURES: Final = COST_MEASURES_NW.to_polars()
TREND_MEASURES: Final = TREND_MEASURES_NW.to_polars()
CARRIER_SCHEMA: Final = CARRIER_SCHEMA_NW.to_polars()
HOTSPOT_SCHEMA: Final = HOTSPOT_SCHEMA_NW.to_polars()

Merge = Literal["sum", "min", "max", "any"]


@dataclass(frozen=True)
class Measure:
    """One measure of a report, computed in two steps (see :func:`_aggregate`).

    ``needs`` is the row aggregate it is made from (a key of :func:`_row_aggregates`);
    ``on_groups`` computes it on the partial groups, where ``send_result`` is a key;
    ``merge`` combines the partial values of one group.
    """

    needs: str
    on_groups: Callable[[], nw.Expr]
    merge: Merge
    count: bool = False  # a whole number: Int64 on every engine


def _row_aggregates() -> dict[str, nw.Expr]:
    """Return the aggregates taken over the rows: plain ones, which every engine does fastest."""
    return {
        "_rows": nw.len(),
        "_cost": nw.col("sell_price").sum(),
        "_segments": nw.col("segments").sum(),
        "_first": nw.col("sent_at").min(),
        "_last": nw.col("sent_at").max(),
        "_all_final": nw.col("is_final").all(),
    }


def _where_result(condition: Callable[[nw.Expr], nw.Expr], column: str) -> Callable[[], nw.Expr]:
    """``column`` on the partial groups whose ``send_result`` meets ``condition``, else 0."""

    def on_groups() -> nw.Expr:
        # A sum of nothing is null on SQL engines and 0 on the others: 0 everywhere.
        value = nw.col(column).fill_null(0)
        return nw.when(condition(nw.col("send_result"))).then(value).otherwise(0)

    return on_groups


def _delivered(result: nw.Expr) -> nw.Expr:
    return result == 1


def _failed(result: nw.Expr) -> nw.Expr:
    return result == 0


def _pending(result: nw.Expr) -> nw.Expr:
    return ~result.is_in([0, 1]) | result.is_null()


def _everything(result: nw.Expr) -> nw.Expr:
    return nw.lit(True)


OUTCOMES: Final[dict[str, Measure]] = {
    "messages": Measure("_rows", lambda: nw.col("_rows"), "sum", count=True),
    "delivered": Measure("_rows", _where_result(_delivered, "_rows"), "sum", count=True),
    "failed": Measure("_rows", _where_result(_failed, "_rows"), "sum", count=True),
    "pending": Measure("_rows", _where_result(_pending, "_rows"), "sum", count=True),
}
COST: Final = Measure("_cost", _where_result(_everything, "_cost"), "sum")
COST_FAILED: Final = Measure("_cost", _where_result(_failed, "_cost"), "sum")


# -- the door and the exit ------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The row selection every report accepts, checked once."""

    start: DateLike | None = None
    end: DateLike | None = None
    sms_types: SmsTypes | None = None
    campaigns: Campaigns | None = None


@dataclass(frozen=True)
class _Rows:
    """A report's input as a Narwhals LazyFrame, and how to hand the result back."""

    lazy: nw.LazyFrame[Any]
    collect: bool
    #: The lake's path or URL when the report was given one: a damaged file is then named.
    lake: str | os.PathLike[str] | None = None

    def hand_back(self, result: nw.LazyFrame[Any]) -> ReportFrame:
        # Eager in, eager out; a Polars LazyFrame (and a lake) gives a Polars DataFrame,
        # as the reports always did; DuckDB and Spark stay lazy, where the data is.
        if not self.collect:
            return result.to_native()
        if self.lake is None:
            return result.collect().to_native()
        with reading_lake(self.lake):
            return result.collect().to_native()


def _open(frame: ReportInput, report: str, needs: set[str], filters: Filters) -> _Rows:
    """Check ``frame`` and the filters, then select the rows: the one door of every report."""
    start, end = date_bounds(filters.start, filters.end)
    codes = sms_type_codes(filters.sms_types)
    names = campaign_list(filters.campaigns)
    lake: str | os.PathLike[str] | None = None
    if isinstance(frame, str | os.PathLike):
        lake = frame
        # Learning the columns reads a footer: a damaged file is named here too, and the
        # scan keeps what it learnt.
        with reading_lake(lake):
            frame = read_lake(lake)
            frame.collect_schema()
    try:
        given = nw.from_native(frame)
    except TypeError as exc:
        raise ConfigError(
            f"{report} takes a Polars, pandas, DuckDB or Spark frame, or a lake's path or URL; "
            f"got {type(frame).__name__}"
        ) from exc
    lazy = given.lazy()
    columns = set(lazy.columns)
    needed = needs | ({"sms_type"} if codes is not None else set())
    needed |= {"campaign"} if names is not None else set()
    if "template" in needed and "template" not in columns:
        lazy = _with_template(lazy, report)
        columns = set(lazy.columns)
    missing = sorted(needed - columns)
    if not {"date", "sent_at"} & columns:
        missing.append("date (or sent_at)")
    if missing:
        raise ConfigError(
            f"{report} needs the column(s) {', '.join(missing)}, which the frame lacks; "
            "give it read_lake(...) or a frame with esms_analytics.LAKE_SCHEMA's columns"
        )
    lazy = _with_day(lazy, report)
    if start is not None:
        lazy = lazy.filter(nw.col("date") >= start)
    if end is not None:
        lazy = lazy.filter(nw.col("date") <= end)
    if codes is not None:
        lazy = lazy.filter(nw.col("sms_type").is_in(codes))
    if names is not None:
        lazy = lazy.filter(_campaign().is_in(names))
    collect = isinstance(given, nw.DataFrame) or lazy.implementation is nw.Implementation.POLARS
    return _Rows(lazy, collect, lake)


def _with_template(lazy: nw.LazyFrame[Any], report: str) -> nw.LazyFrame[Any]:
    """Give a lake written before templates its ``template``, derived from ``content``.

    The template's regexes are Polars'; other engines need the column in the data.
    """
    if "content" not in lazy.columns:
        return lazy  # the door names the missing column
    if lazy.implementation is not nw.Implementation.POLARS:
        raise ConfigError(
            f"{report} by template needs a `template` column, which this frame lacks (a lake "
            "written before templates); only Polars derives it from `content`: give the report "
            "the lake's path or a Polars frame, or add the column with "
            "esms_analytics.privacy.text.template_expr"
        )
    from esms_analytics.privacy.text import template_expr

    native: pl.LazyFrame = lazy.to_native()
    return nw.from_native(native.with_columns(template_expr(pl.col("content")).alias("template")))


def _with_day(lazy: nw.LazyFrame[Any], report: str) -> nw.LazyFrame[Any]:
    """Give the frame ``date`` as a date: the partition day, or the Vietnam day of sent_at."""
    schema = lazy.collect_schema()
    if "date" in schema:
        # pandas has no date dtype of its own and keeps days as datetimes.
        return (
            lazy if schema["date"] == nw.Date else lazy.with_columns(nw.col("date").cast(nw.Date))
        )
    try:
        return lazy.with_columns(date=nw.col("sent_at").dt.convert_time_zone(TIME_ZONE).dt.date())
    except (NotImplementedError, AttributeError) as exc:
        raise ConfigError(
            f"{report}: this frame has no `date` column and its engine cannot move sent_at to "
            "Vietnam time; add the day as `date` (reading the lake's sms/ folder gives it)"
        ) from exc


# -- the pieces every report is made of -------------------------------------------


def _campaign(column: str = "campaign") -> nw.Expr:
    # Null and empty names are the same thing to a reader: no campaign given.
    name = nw.col(column).str.strip_chars()
    return nw.when(name.is_null() | (name == "")).then(nw.lit(NO_CAMPAIGN)).otherwise(name)


def _days_back_to_monday(day: nw.Expr) -> nw.Expr:
    """Return how many days ``day`` is past its Monday: 0 to 5, and Sunday 6 or -1.

    Narwhals numbers Monday 1 on every engine but Sunday 7 on most and 0 on
    Spark; :func:`_monday` takes either Sunday.
    """
    return day.dt.weekday() - 1


def _monday(day: nw.Expr, days_back: nw.Expr) -> nw.Expr:
    """Return the Monday of the ISO week of ``day`` (Narwhals has no "1w" truncation).

    ``days_back`` is :func:`_days_back_to_monday` of ``day``, computed once
    beforehand: one comparison a branch keeps the expression small to translate.
    """
    monday = nw.when(days_back == 0).then(day)
    for days in range(1, 6):
        monday = monday.when(days_back == days).then(day.dt.offset_by(f"-{days}d"))
    # Sunday, whichever way the engine numbers it (and a null day stays null).
    return monday.otherwise(day.dt.offset_by("-6d"))


def _raw_key(dimension: str) -> nw.Expr:
    """Return what a dimension groups by on the rows themselves: cheap, no string work."""
    if dimension == "sms_type":
        return nw.col("sms_type_label")
    if dimension in ("date", "week", "month"):
        return nw.col("date")
    return nw.col(dimension)


def _label(dimension: str, raw: str) -> nw.Expr:
    """Label the dimension as people read it, on the few grouped rows."""
    column = nw.col(raw)
    if dimension == "campaign":
        labelled = _campaign(raw)
    elif dimension == "week":
        labelled = _monday(column, nw.col(f"{raw}_days_back"))
    elif dimension == "month":
        labelled = column.dt.truncate("1mo")
    else:
        labelled = column
    return labelled.cast(DIMENSION_DTYPES[dimension])


def _aggregate(
    lazy: nw.LazyFrame[Any], dimensions: Sequence[tuple[str, str]], measures: dict[str, Measure]
) -> nw.LazyFrame[Any]:
    """Group by ``dimensions`` (output name, dimension) in two steps.

    First by the raw columns and ``send_result`` over every row, with plain
    aggregates only; then, over those few groups, label the dimensions
    (trimming names, enum to text, weeks and months), split the outcomes and
    merge. Nothing is computed per row but the grouping itself, so no engine
    builds a column for the whole lake.
    """
    raws = {f"_raw_{name}": _raw_key(dimension) for name, dimension in dimensions}
    rows = _row_aggregates()
    needed = {measure.needs for measure in measures.values()}
    partial = (
        lazy.with_columns(**raws)
        .group_by([*raws, "send_result"])
        .agg(expr.alias(name) for name, expr in rows.items() if name in needed)
    )
    weeks = [f"_raw_{name}" for name, dimension in dimensions if dimension == "week"]
    if weeks:
        partial = partial.with_columns(
            **{f"{raw}_days_back": _days_back_to_monday(nw.col(raw)) for raw in weeks}
        )
    labelled = partial.with_columns(
        *(_label(dimension, f"_raw_{name}").alias(name) for name, dimension in dimensions),
        *(measure.on_groups().alias(name) for name, measure in measures.items()),
    )
    merged = labelled.group_by([name for name, _ in dimensions]).agg(
        getattr(nw.col(name), measure.merge)() for name, measure in measures.items()
    )
    # Engines widen sums (DuckDB to 128 bits): counts go back to Int64 before any arithmetic.
    counts = [name for name, measure in measures.items() if measure.count]
    return merged.with_columns(nw.col(counts).cast(nw.Int64))


def _rate() -> nw.Expr:
    final = nw.col("delivered") + nw.col("failed")
    return nw.when(final > 0).then(nw.col("delivered") / final)


def with_wilson_interval(frame: nw.LazyFrame[Any], z: float = Z_95) -> nw.LazyFrame[Any]:
    """Add ``delivery_rate`` and its Wilson score interval (``_low``, ``_high``), null when n is 0.

    Built in steps over named columns, so the expression stays small to translate
    for every engine.

    >>> frame = nw.from_native(pl.LazyFrame({"delivered": [9, 0, 0], "failed": [1, 0, 3]}))
    >>> with_wilson_interval(frame).select(
    ...     nw.col("delivery_rate", "delivery_rate_low", "delivery_rate_high").round(4)
    ... ).collect().rows()
    [(0.9, 0.5958, 0.9821), (None, None, None), (0.0, 0.0, 0.5615)]
    """
    n, p = nw.col("_n"), nw.col("delivery_rate")
    center, half, valid = nw.col("_center"), nw.col("_half"), nw.col("_n") > 0
    return (
        frame.with_columns(_n=(nw.col("delivered") + nw.col("failed")).cast(nw.Float64))
        .with_columns(delivery_rate=_rate())
        .with_columns(
            _center=(p + z * z / (2 * n)) / (1 + z * z / n),
            _half=z * ((p * (1 - p) / n + z * z / (4 * n * n)).sqrt()) / (1 + z * z / n),
        )
        .with_columns(
            delivery_rate_low=nw.when(valid).then((center - half).clip(0.0, 1.0)),
            delivery_rate_high=nw.when(valid).then((center + half).clip(0.0, 1.0)),
        )
        .drop("_n", "_center", "_half")
    )


def add_wilson_interval(frame: pl.DataFrame) -> pl.DataFrame:
    """Return a Polars frame of ``delivered`` and ``failed`` counts with its rate and interval.

    For the plots and the page's headline figures: the reports' own formula.

    >>> add_wilson_interval(pl.DataFrame({"delivered": [9], "failed": [1]})).select(
    ...     pl.col("delivery_rate_low", "delivery_rate_high").round(4)).rows()
    [(0.5958, 0.9821)]
    """
    result: pl.DataFrame = with_wilson_interval(nw.from_native(frame.lazy())).collect().to_native()
    return result


def _per_delivered(cost: str) -> nw.Expr:
    return nw.when(nw.col("delivered") > 0).then(nw.col(cost) / nw.col("delivered"))


def _shaped(lazy: nw.LazyFrame[Any], schema: dict[str, nw.dtypes.DType]) -> nw.LazyFrame[Any]:
    """Select exactly the columns of ``schema``, cast to its dtypes.

    Instants keep the engine's spelling: DuckDB and Spark keep time zones in the
    session, not in the column.
    """
    casts = {name: dtype for name, dtype in schema.items() if not isinstance(dtype, nw.Datetime)}
    return lazy.select(list(schema)).with_columns(
        nw.col(name).cast(dtype) for name, dtype in casts.items()
    )


def _time_first(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split dimension names into time dimensions (sorted first) and the others."""
    return [n for n in names if n in TIME_DIMENSIONS], [
        n for n in names if n not in TIME_DIMENSIONS
    ]


def _sorted(lazy: nw.LazyFrame[Any], keys: Sequence[tuple[str, bool]]) -> nw.LazyFrame[Any]:
    """Sort by (column, descending) pairs, nulls last on every engine."""
    return lazy.sort(
        [name for name, _ in keys], descending=[down for _, down in keys], nulls_last=True
    )


# -- the reports --------------------------------------------------------------------


DELIVERY_AGGREGATES: Final[dict[str, Measure]] = {
    **OUTCOMES,
    "first_sent": Measure("_first", lambda: nw.col("_first"), "min"),
    "last_sent": Measure("_last", lambda: nw.col("_last"), "max"),
    "provisional": Measure("_all_final", lambda: ~nw.col("_all_final"), "any"),
}


def _delivery(frame: ReportInput, names: list[str], filters: Filters, report: str) -> ReportFrame:
    rows = _open(
        frame,
        report,
        {"send_result", "is_final", "sent_at", *_needs(names)},
        filters,
    )
    grouped = _aggregate(rows.lazy, [(name, name) for name in names], DELIVERY_AGGREGATES)
    result = with_wilson_interval(grouped).with_columns(
        pending_share=nw.col("pending") / nw.col("messages")
    )
    times, others = _time_first(names)
    schema = {**{name: DIMENSION_DTYPES[name] for name in names}, **DELIVERY_MEASURES}
    ordered = _sorted(
        _shaped(result, schema),
        [*((t, False) for t in times), ("messages", True), *((o, False) for o in others)],
    )
    return rows.hand_back(ordered)


def _needs(dimensions: Sequence[str]) -> set[str]:
    """Return the columns ``dimensions`` read (the day is checked by the door)."""
    columns = {
        "sms_type": "sms_type_label",
        "campaign": "campaign",
        "template": "template",
        "carrier": "carrier",
    }
    return {columns[name] for name in dimensions if name in columns}


def delivery(
    frame: ReportInput,
    by: Dimension | Sequence[Dimension] = "campaign",
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Delivery broken down by one or several of :data:`DIMENSIONS`.

    Columns: the ``by`` dimensions, then :data:`DELIVERY_MEASURES`. Time
    dimensions come first in the order, chronologically; then the largest
    groups first.

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="A", Content="x", Phone=phone,
    ...              SellPrice=750, SendStatus=5, SendResult=result, SmsType=2,
    ...              SentTime=f"/Date({1705484048995 + i * 86_400_000}+0700)/")
    ...         for i, (phone, result) in enumerate(
    ...             [("0961234567", 1), ("0971234567", 0), ("0901234567", 1)])]
    >>> delivery(decode_rows(rows), by=["date", "carrier"]).select(
    ...     "date", "carrier", "messages", "delivery_rate").rows()
    [(datetime.date(2024, 1, 17), 'viettel', 1, 1.0), (datetime.date(2024, 1, 18), 'viettel', 1, 0.0), (datetime.date(2024, 1, 19), 'mobifone', 1, 1.0)]
    """
    names = name_list(by, "by", DIMENSIONS)
    return _delivery(frame, names, Filters(start, end, sms_types, campaigns), "delivery")


def delivery_by_campaign(
    frame: ReportInput,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Delivery per campaign, largest first: ``delivery(frame, by="campaign")``.

    Columns as :data:`DELIVERY_SCHEMA`.

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign=name, Content="Xin chao",
    ...              Phone="0901888484", SellPrice=800, SendStatus=status, SendResult=result,
    ...              SentTime=f"/Date({1705484048995 + i * 60_000}+0700)/", SmsType=2)
    ...         for i, (name, status, result) in enumerate(
    ...             [("Tết", 5, 1), ("Tết", 5, 1), ("Tết", 5, 0), ("Tết", 7, 2), (None, 5, 1)])]
    >>> report = delivery_by_campaign(decode_rows(rows))
    >>> report.select("campaign", "messages", "delivered", "failed", "pending",
    ...               pl.col("delivery_rate").round(3), "provisional").rows()
    [('Tết', 4, 2, 1, 1, 0.667, True), ('(no campaign)', 1, 1, 0, 0, 1.0, False)]
    """
    filters = Filters(start, end, sms_types, campaigns)
    return _delivery(frame, ["campaign"], filters, "delivery_by_campaign")


COST_AGGREGATES: Final[dict[str, Measure]] = {
    "messages": OUTCOMES["messages"],
    "delivered": OUTCOMES["delivered"],
    "segments": Measure("_segments", _where_result(_everything, "_segments"), "sum", count=True),
    "cost_vnd": COST,
    "cost_delivered_vnd": Measure("_cost", _where_result(_delivered, "_cost"), "sum"),
    "cost_failed_vnd": COST_FAILED,
}


def cost_breakdown(
    frame: ReportInput,
    by: Dimension | Sequence[Dimension] = "campaign",
    *,
    totals: bool = False,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Spend by one or several of :data:`DIMENSIONS`, most expensive first.

    Columns: the ``by`` dimensions, then :data:`COST_MEASURES`. ``cost_failed_vnd``
    is spend on messages that never arrived; ``cost_per_delivered_vnd`` is all
    spend over delivered messages (null when none was delivered); ``share`` is
    the part of the total cost. ``totals=True`` appends a ``(total)`` row (the
    dimensions then become strings). Time dimensions order the rows first.

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="Tết", Content="Xin chao",
    ...              Phone=phone, SellPrice=price, SendStatus=5, SendResult=result,
    ...              SentTime="/Date(1705484048995+0700)/", SmsType=2)
    ...         for i, (phone, price, result) in enumerate(
    ...             [("0961234567", 750, 1), ("0961234568", 750, 0), ("0901234567", 720, 1)])]
    >>> cost_breakdown(decode_rows(rows), by="carrier", totals=True).select(
    ...     "carrier", "messages", "cost_vnd", "cost_failed_vnd", "cost_per_delivered_vnd",
    ...     pl.col("share").round(3)).rows()
    [('viettel', 2, 1500.0, 750.0, 1500.0, 0.676), ('mobifone', 1, 720.0, 0.0, 720.0, 0.324), ('(total)', 3, 2220.0, 750.0, 1110.0, 1.0)]
    """
    names = name_list(by, "by", DIMENSIONS)
    if not isinstance(totals, bool):
        raise ConfigError(f"totals={totals!r} is not accepted; give True or False")
    needs = {"send_result", "sell_price", "segments", *_needs(names)}
    rows = _open(frame, "cost_breakdown", needs, Filters(start, end, sms_types, campaigns))
    grouped = _aggregate(rows.lazy, [(name, name) for name in names], COST_AGGREGATES)
    whole = nw.col("cost_vnd").sum()
    result = grouped.with_columns(
        cost_per_delivered_vnd=_per_delivered("cost_vnd"),
        share=nw.when(whole > 0).then(nw.col("cost_vnd") / whole),
        _total=nw.lit(False),
    )
    schema = {**{name: DIMENSION_DTYPES[name] for name in names}, **COST_MEASURES_NW}
    result = _shaped(result, {**schema, "_total": nw.Boolean()})
    if totals:
        result = _with_total_row(result, names)
    times, others = _time_first(names)
    ordered = _sorted(
        result,
        [
            ("_total", False),
            *((t, False) for t in times),
            ("cost_vnd", True),
            *((o, False) for o in others),
        ],
    )
    return rows.hand_back(ordered.drop("_total"))


def _with_total_row(grouped: nw.LazyFrame[Any], names: list[str]) -> nw.LazyFrame[Any]:
    """Append a ``(total)`` row under the groups, whose dimensions become text."""
    labelled = grouped.with_columns(nw.col(names).cast(nw.String))
    sums = [name for name in COST_AGGREGATES]
    total = (
        grouped.select(nw.col(sums).sum())
        .filter(nw.col("messages") > 0)  # no total row over nothing
        .with_columns(
            nw.col([name for name, measure in COST_AGGREGATES.items() if measure.count]).cast(
                nw.Int64
            )
        )
        .with_columns(
            cost_per_delivered_vnd=_per_delivered("cost_vnd"),
            share=nw.when(nw.col("cost_vnd") > 0).then(nw.lit(1.0)),
            _total=nw.lit(True),
            **{
                name: nw.lit(TOTAL_LABEL if i == 0 else None, nw.String())
                for i, name in enumerate(names)
            },
        )
    )
    columns = labelled.columns
    return nw.concat(
        [labelled, _shaped(total, dict(labelled.collect_schema()))], how="vertical"
    ).select(columns)


TREND_AGGREGATES: Final[dict[str, Measure]] = {**OUTCOMES, "cost_vnd": COST}


def delivery_trend(
    frame: ReportInput,
    every: TrendEvery = "1d",
    by: TrendBy | None = None,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Volume and delivery rate per day, ISO week (from Monday) or month.

    Columns: ``period`` (the first day of the period), the ``by`` dimension
    when given, then :data:`TREND_MEASURES`; in order of ``period``, then ``by``.

    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="A", Content="x", Phone="0961234567",
    ...              SellPrice=750, SendStatus=5, SendResult=i % 2, SmsType=2,
    ...              SentTime=f"/Date({1705484048995 + i * 86_400_000}+0700)/") for i in range(3)]
    >>> delivery_trend(decode_rows(rows), every="1d").select("period", "messages", "delivered").rows()
    [(datetime.date(2024, 1, 17), 1, 0), (datetime.date(2024, 1, 18), 1, 1), (datetime.date(2024, 1, 19), 1, 0)]
    """
    period = TREND_PERIODS[one_of(every, "every", tuple(TREND_PERIODS))]
    groups = [] if by is None else [one_of(by, "by", TREND_BY)]
    needs = {"send_result", "sell_price", *_needs(groups)}
    rows = _open(frame, "delivery_trend", needs, Filters(start, end, sms_types, campaigns))
    dimensions = [("period", period), *((name, name) for name in groups)]
    grouped = _aggregate(rows.lazy, dimensions, TREND_AGGREGATES)
    schema = {"period": nw.Date(), **{n: DIMENSION_DTYPES[n] for n in groups}, **TREND_MEASURES_NW}
    result = _shaped(grouped.with_columns(delivery_rate=_rate()), schema)
    return rows.hand_back(_sorted(result, [("period", False), *((n, False) for n in groups)]))


def carrier_performance(
    frame: ReportInput,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Delivery rate, volume and cost per carrier and message type.

    The carrier is estimated from the number's prefix: it is the carrier that
    first issued the number, so ported numbers count under their old carrier.
    ``volume_share`` is the carrier's part of its message type's volume.
    Columns as :data:`CARRIER_SCHEMA`.

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="A", Content="x", Phone=phone,
    ...              SellPrice=750, SendStatus=5, SendResult=result, SmsType=2,
    ...              SentTime="/Date(1705484048995+0700)/")
    ...         for i, (phone, result) in enumerate(
    ...             [("0961234567", 1), ("0971234567", 0), ("0901234567", 1)])]
    >>> carrier_performance(decode_rows(rows)).select(
    ...     "carrier", "sms_type", "messages", "delivery_rate", "volume_share").rows()
    [('viettel', 'customer_care', 2, 0.5, 0.6666666666666666), ('mobifone', 'customer_care', 1, 1.0, 0.3333333333333333)]
    """
    needs = {"send_result", "sell_price", "carrier", "sms_type_label"}
    rows = _open(frame, "carrier_performance", needs, Filters(start, end, sms_types, campaigns))
    grouped = _aggregate(
        rows.lazy, [("carrier", "carrier"), ("sms_type", "sms_type")], TREND_AGGREGATES
    )
    result = with_wilson_interval(grouped).with_columns(
        cost_per_delivered_vnd=_per_delivered("cost_vnd"),
        volume_share=nw.col("messages") / nw.col("messages").sum().over("sms_type"),
    )
    ordered = _sorted(
        _shaped(result, dict(CARRIER_SCHEMA_NW)),
        [("sms_type", False), ("messages", True), ("carrier", False)],
    )
    return rows.hand_back(ordered)


HOTSPOT_AGGREGATES: Final[dict[str, Measure]] = {**OUTCOMES, "cost_failed_vnd": COST_FAILED}


def failure_hotspots(
    frame: ReportInput,
    *,
    by: HotspotBy = "campaign",
    min_messages: int = 100,
    top: int | None = 20,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Campaign (or template) x carrier pairs with the worst delivery rates, among those with volume.

    Pairs with fewer than ``min_messages`` messages, or no final row, are left
    out; the rest are ordered by ``delivery_rate`` (worst first), then by
    failed messages; ``top`` keeps the first pairs (None keeps all).
    ``campaign_delivery_rate`` is the campaign's rate over every carrier, for
    comparison. Columns as :data:`HOTSPOT_SCHEMA`; with ``by="template"`` the
    first column is ``template`` and the comparison ``template_delivery_rate``
    (a lake without a ``template`` column has it derived from ``content``, on
    Polars only).

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="Tết", Content="x",
    ...              Phone="0961234567" if i < 4 else "0901234567", SellPrice=750,
    ...              SendStatus=5, SendResult=int(i not in (0, 1, 2)), SmsType=2,
    ...              SentTime="/Date(1705484048995+0700)/") for i in range(8)]
    >>> failure_hotspots(decode_rows(rows), min_messages=4).select(
    ...     "campaign", "carrier", "delivery_rate", "campaign_delivery_rate", "cost_failed_vnd"
    ... ).rows()
    [('Tết', 'viettel', 0.25, 0.625, 2250.0), ('Tết', 'mobifone', 1.0, 0.625, 0.0)]
    """
    group = one_of(by, "by", HOTSPOT_BY)
    smallest = count(min_messages, "min_messages")
    keep = optional_count(top, "top")
    needs = {"send_result", "sell_price", group, "carrier"}
    rows = _open(frame, "failure_hotspots", needs, Filters(start, end, sms_types, campaigns))
    grouped = _aggregate(rows.lazy, [(group, group), ("carrier", "carrier")], HOTSPOT_AGGREGATES)
    final = nw.col("_final").sum().over(group)
    pairs = (
        with_wilson_interval(grouped)
        .with_columns(_final=nw.col("delivered") + nw.col("failed"))
        .with_columns(
            **{
                f"{group}_delivery_rate": nw.when(final > 0).then(
                    nw.col("delivered").sum().over(group) / final
                )
            },
        )
        .filter((nw.col("messages") >= smallest) & ~nw.col("delivery_rate").is_null())
    )
    schema = {
        (group if name == "campaign" else name.replace("campaign", group)): dtype
        for name, dtype in HOTSPOT_SCHEMA_NW.items()
    }
    ordered = _sorted(
        _shaped(pairs, schema),
        [("delivery_rate", False), ("failed", True), (group, False), ("carrier", False)],
    )
    return rows.hand_back(ordered if keep is None else ordered.head(keep))


def unique_recipients(
    frame: ReportInput,
    by: Dimension | Sequence[Dimension] | None = None,
    *,
    start: DateLike | None = None,
    end: DateLike | None = None,
    sms_types: SmsTypes | None = None,
    campaigns: Campaigns | None = None,
) -> ReportFrame:
    """Distinct recipients (and their messages), overall or by :data:`DIMENSIONS`.

    A recipient is read from the first of :data:`RECIPIENT_COLUMNS` the frame
    has: ``phone_token`` in a pseudonymised lake (one token per number, so the
    count equals the raw lake's), else ``phone_e164`` (``0901888484`` and
    ``84901888484`` are one person) falling back to ``phone`` where the number
    is not Vietnamese. Rows without a number are left out. Columns: the ``by``
    dimensions, then :data:`RECIPIENTS_MEASURES`; time dimensions first,
    chronologically, then the most recipients. No number is ever shown.

    Examples
    --------
    >>> from esms_analytics import decode_rows
    >>> rows = [dict(SmsId=1, ReferenceId=f"r{i}", Campaign="A", Content="x", Phone=phone,
    ...              SellPrice=750, SendStatus=5, SendResult=1, SmsType=2,
    ...              SentTime="/Date(1705484048995+0700)/")
    ...         for i, phone in enumerate(["0961234567", "84961234567", "0901234567"])]
    >>> unique_recipients(decode_rows(rows)).rows()
    [(2, 3)]
    """
    names = [] if by is None else name_list(by, "by", DIMENSIONS)
    filters = Filters(start, end, sms_types, campaigns)
    probe = _open(frame, "unique_recipients", set(_needs(names)), filters)
    present = [name for name in RECIPIENT_COLUMNS if name in probe.lazy.columns]
    if not present:
        raise ConfigError(
            "unique_recipients needs a phone_token, phone_e164 or phone column, which the frame "
            "lacks; give it read_lake(...) or a frame with the lake's columns"
        )
    if present[0] == "phone_token":
        key = nw.col("phone_token")
    else:
        key = nw.coalesce(*(nw.col(name) for name in present))
    rows = probe.lazy.with_columns(_recipient=key).filter(~nw.col("_recipient").is_null())
    if names:
        rows = rows.with_columns(**{f"_raw_{name}": _raw_key(name) for name in names})
    weeks = [f"_raw_{name}" for name in names if name == "week"]
    if weeks:
        rows = rows.with_columns(
            **{f"{raw}_days_back": _days_back_to_monday(nw.col(raw)) for raw in weeks}
        )
    measures = [
        nw.col("_recipient").n_unique().alias("recipients"),
        nw.len().alias("messages"),
    ]
    if names:
        labelled = rows.with_columns(_label(name, f"_raw_{name}").alias(name) for name in names)
        result = labelled.group_by(names).agg(*measures)
    else:
        result = rows.select(*measures)
    schema = {**{name: DIMENSION_DTYPES[name] for name in names}, **RECIPIENTS_MEASURES}
    times, others = _time_first(names)
    ordered = _sorted(
        _shaped(result, schema),
        [*((t, False) for t in times), ("recipients", True), *((o, False) for o in others)],
    )
    return probe.hand_back(ordered)
