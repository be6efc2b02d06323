"""The reports as they were before Narwhals: pure Polars, frozen for the overhead benchmark.

Copied from ``esms_analytics/reports.py`` at commit 223a3b4 (the last pure-Polars
version; ``git show 223a3b4:esms_analytics/reports.py``), doctests left out.
``bench_reports`` times each report here against the same report in the package,
on the same lake in the same process, to measure what the Narwhals layer costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final, Literal

import polars as pl

from esms_analytics.codes import TIME_ZONE
from esms_analytics.errors import ConfigError

NO_CAMPAIGN: Final = "(no campaign)"
TOTAL_LABEL: Final = "(total)"
Z_95: Final = 1.959963984540054

CostDimension = Literal["campaign", "sms_type", "carrier", "date", "month"]
COST_DIMENSIONS: Final[tuple[str, ...]] = ("campaign", "sms_type", "carrier", "date", "month")
TrendEvery = Literal["1d", "1w", "1mo"]

DELIVERY_SCHEMA: Final = pl.Schema(
    {
        "campaign": pl.String(),
        "messages": pl.Int64(),
        "delivered": pl.Int64(),
        "failed": pl.Int64(),
        "pending": pl.Int64(),
        "delivery_rate": pl.Float64(),
        "delivery_rate_low": pl.Float64(),
        "delivery_rate_high": pl.Float64(),
        "pending_share": pl.Float64(),
        "first_sent": pl.Datetime("us", TIME_ZONE),
        "last_sent": pl.Datetime("us", TIME_ZONE),
        "provisional": pl.Boolean(),
    }
)
COST_MEASURES: Final = pl.Schema(
    {
        "messages": pl.Int64(),
        "delivered": pl.Int64(),
        "segments": pl.Int64(),
        "cost_vnd": pl.Float64(),
        "cost_delivered_vnd": pl.Float64(),
        "cost_failed_vnd": pl.Float64(),
        "cost_per_delivered_vnd": pl.Float64(),
        "share": pl.Float64(),
    }
)
TREND_MEASURES: Final = pl.Schema(
    {
        "messages": pl.Int64(),
        "delivered": pl.Int64(),
        "failed": pl.Int64(),
        "pending": pl.Int64(),
        "delivery_rate": pl.Float64(),
        "cost_vnd": pl.Float64(),
    }
)
CARRIER_SCHEMA: Final = pl.Schema(
    {
        "carrier": pl.String(),
        "sms_type": pl.String(),
        "messages": pl.Int64(),
        "delivered": pl.Int64(),
        "failed": pl.Int64(),
        "pending": pl.Int64(),
        "delivery_rate": pl.Float64(),
        "delivery_rate_low": pl.Float64(),
        "delivery_rate_high": pl.Float64(),
        "cost_vnd": pl.Float64(),
        "cost_per_delivered_vnd": pl.Float64(),
        "volume_share": pl.Float64(),
    }
)
HOTSPOT_SCHEMA: Final = pl.Schema(
    {
        "campaign": pl.String(),
        "carrier": pl.String(),
        "messages": pl.Int64(),
        "delivered": pl.Int64(),
        "failed": pl.Int64(),
        "delivery_rate": pl.Float64(),
        "delivery_rate_low": pl.Float64(),
        "delivery_rate_high": pl.Float64(),
        "campaign_delivery_rate": pl.Float64(),
        "cost_failed_vnd": pl.Float64(),
    }
)

AnyFrame = pl.LazyFrame | pl.DataFrame


def _filtered(
    frame: AnyFrame,
    start: date | None,
    end: date | None,
    sms_types: Sequence[int] | None,
    campaigns: Sequence[str] | None,
) -> pl.LazyFrame:
    lazy = frame.lazy()
    day = _day()
    if "date" not in lazy.collect_schema().names():
        lazy = lazy.with_columns(date=pl.col("sent_at").dt.date())
    if start is not None:
        lazy = lazy.filter(day >= start)
    if end is not None:
        lazy = lazy.filter(day <= end)
    if sms_types is not None:
        lazy = lazy.filter(pl.col("sms_type").is_in(list(sms_types)))
    if campaigns is not None:
        lazy = lazy.filter(_campaign().is_in(list(campaigns)))
    return lazy


def _day() -> pl.Expr:
    return pl.col("date")


def _campaign() -> pl.Expr:
    # Null and empty names are the same thing to a reader: no campaign given.
    name = pl.col("campaign").str.strip_chars()
    return pl.when(name.is_null() | (name == "")).then(pl.lit(NO_CAMPAIGN)).otherwise(name)


Merge = Literal["sum", "min", "max", "any"]


def _outcomes() -> dict[str, tuple[pl.Expr, Merge]]:
    result = pl.col("send_result")
    return {
        "messages": (pl.len().cast(pl.Int64), "sum"),
        "delivered": ((result == 1).sum().cast(pl.Int64), "sum"),
        "failed": ((result == 0).sum().cast(pl.Int64), "sum"),
        "pending": ((~result.is_in([0, 1]) | result.is_null()).sum().cast(pl.Int64), "sum"),
    }


def _costs() -> dict[str, tuple[pl.Expr, Merge]]:
    price = pl.col("sell_price").fill_null(0.0)
    # Multiplying by the condition is a fused pass; .filter() would build new arrays.
    return {
        "cost_vnd": (price.sum(), "sum"),
        "cost_delivered_vnd": ((price * (pl.col("send_result") == 1)).sum(), "sum"),
        "cost_failed_vnd": ((price * (pl.col("send_result") == 0)).sum(), "sum"),
    }


def _raw_key(name: str) -> pl.Expr:
    """Return the column a dimension groups by on the rows themselves: cheap, no string work."""
    if name == "campaign":
        return pl.col("campaign")
    if name == "sms_type":
        return pl.col("sms_type_label").alias("sms_type")
    if name == "carrier":
        return pl.col("carrier")
    if name == "date":
        return _day().alias("date")
    if name == "month":
        return _day().dt.truncate("1mo").alias("month")
    if name.startswith("period:"):
        return _day().dt.truncate(name.partition(":")[2]).alias("period")
    raise ConfigError(f"cannot break costs down by {name!r}; use {', '.join(COST_DIMENSIONS)}")


def _label_key(name: str) -> pl.Expr:
    """Return the dimension as people read it, computed on the few grouped rows."""
    if name == "campaign":
        return _campaign().alias("campaign")
    if name in ("sms_type", "carrier"):
        return pl.col(name).cast(pl.String)
    return pl.col(name.partition(":")[0])


def _aggregate(
    lazy: pl.LazyFrame, dimensions: Sequence[str], measures: dict[str, tuple[pl.Expr, Merge]]
) -> pl.LazyFrame:
    """Group by ``dimensions`` in two steps: raw columns first, then labels.

    The raw columns are grouped over every row, then the labels over the groups,
    merging the partial measures. Labelling (trimming campaign names, enum to
    text) then costs per group, not per row.
    """
    keys = [name.partition(":")[0] for name in dimensions]
    partial = lazy.group_by([_raw_key(name) for name in dimensions]).agg(
        expr.alias(name) for name, (expr, _) in measures.items()
    )
    labelled = partial.with_columns(_label_key(name) for name in dimensions)
    merges = {"sum": pl.Expr.sum, "min": pl.Expr.min, "max": pl.Expr.max, "any": pl.Expr.any}
    return labelled.group_by(keys).agg(
        merges[merge](pl.col(name)).alias(name) for name, (_, merge) in measures.items()
    )


def _rate() -> pl.Expr:
    final = pl.col("delivered") + pl.col("failed")
    return pl.when(final > 0).then(pl.col("delivered") / final).otherwise(None)


def wilson_bounds(z: float = Z_95) -> tuple[pl.Expr, pl.Expr]:
    """Compute the Wilson score interval of delivered / (delivered + failed), null when n is 0."""
    n = (pl.col("delivered") + pl.col("failed")).cast(pl.Float64)
    p = pl.col("delivered") / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)).sqrt()) / (1 + z * z / n)
    valid = n > 0
    return (
        pl.when(valid).then((center - half).clip(0.0, 1.0)).otherwise(None),
        pl.when(valid).then((center + half).clip(0.0, 1.0)).otherwise(None),
    )


def delivery_by_campaign(
    frame: AnyFrame,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
    campaigns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Delivery per campaign, largest first; columns as :data:`DELIVERY_SCHEMA`."""
    low, high = wilson_bounds()
    lazy = (
        _aggregate(
            _filtered(frame, start, end, sms_types, campaigns),
            ["campaign"],
            {
                **_outcomes(),
                "first_sent": (pl.col("sent_at").min(), "min"),
                "last_sent": (pl.col("sent_at").max(), "max"),
                "provisional": ((~pl.col("is_final")).any(), "any"),
            },
        )
        .with_columns(
            delivery_rate=_rate(),
            delivery_rate_low=low,
            delivery_rate_high=high,
            pending_share=pl.col("pending") / pl.col("messages"),
        )
        .sort(["messages", "campaign"], descending=[True, False])
    )
    return lazy.select(list(DELIVERY_SCHEMA)).cast(dict(DELIVERY_SCHEMA)).collect()  # type: ignore[arg-type]


def cost_breakdown(
    frame: AnyFrame,
    by: CostDimension | Sequence[CostDimension] = "campaign",
    *,
    totals: bool = False,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
    campaigns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Spend by one or several dimensions, most expensive first.

    Columns: the ``by`` dimensions, then :data:`COST_MEASURES`. ``cost_failed_vnd``
    is spend on messages that never arrived; ``cost_per_delivered_vnd`` is all
    spend over delivered messages (null when none was delivered); ``share`` is
    the part of the total cost. ``totals=True`` appends a ``(total)`` row (the
    dimensions then become strings).

    """
    dimensions = [by] if isinstance(by, str) else list(by)
    if not dimensions:
        raise ConfigError("cost_breakdown needs at least one dimension in by=")
    outcomes = _outcomes()
    measures: dict[str, tuple[pl.Expr, Merge]] = {
        "messages": outcomes["messages"],
        "delivered": outcomes["delivered"],
        "segments": (pl.col("segments").cast(pl.Int64).sum(), "sum"),
        **_costs(),
    }
    lazy = _filtered(frame, start, end, sms_types, campaigns)
    grouped = _aggregate(lazy, dimensions, measures)
    if totals:
        grouped = pl.concat(
            [
                grouped.with_columns(pl.col(dimensions).cast(pl.String)),
                grouped.select(pl.col(list(measures)).sum())
                .filter(pl.col("messages") > 0)  # no total row over nothing
                .with_columns(
                    pl.lit(TOTAL_LABEL).alias(dimensions[0]),
                    *(pl.lit(None, pl.String).alias(name) for name in dimensions[1:]),
                ),
            ],
            how="diagonal",
        )
    is_total = (pl.col(dimensions[0]) == TOTAL_LABEL) if totals else pl.lit(False)
    whole = pl.col("cost_vnd").filter(~is_total).sum()
    result = grouped.with_columns(
        cost_per_delivered_vnd=pl.when(pl.col("delivered") > 0)
        .then(pl.col("cost_vnd") / pl.col("delivered"))
        .otherwise(None),
        share=pl.when(whole > 0).then(pl.col("cost_vnd") / whole).otherwise(None),
    )
    order = [
        is_total,
        pl.col("cost_vnd"),
        *(pl.col(name) for name in dimensions),
    ]
    ordered = result.sort(
        order, descending=[False, True, *([False] * len(dimensions))], nulls_last=True
    )
    return ordered.select(*dimensions, *COST_MEASURES).cast(dict(COST_MEASURES)).collect()  # type: ignore[arg-type]


def delivery_trend(
    frame: AnyFrame,
    every: TrendEvery = "1d",
    by: Literal["carrier", "sms_type", "campaign"] | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
    campaigns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Volume and delivery rate per day, ISO week (from Monday) or month.

    Columns: ``period`` (the first day of the period), the ``by`` dimension
    when given, then :data:`TREND_MEASURES`.
    """
    if every not in ("1d", "1w", "1mo"):
        raise ConfigError(f"every must be '1d', '1w' or '1mo', got {every!r}")
    dimensions = [f"period:{every}", *([by] if by is not None else [])]
    lazy = (
        _aggregate(
            _filtered(frame, start, end, sms_types, campaigns),
            dimensions,
            {**_outcomes(), "cost_vnd": _costs()["cost_vnd"]},
        )
        .with_columns(delivery_rate=_rate())
        .sort(["period", *([by] if by else [])])
    )
    columns = ["period", *([by] if by else []), *TREND_MEASURES]
    return lazy.select(columns).cast(dict(TREND_MEASURES)).collect()  # type: ignore[arg-type]


def carrier_performance(
    frame: AnyFrame,
    *,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
    campaigns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Delivery rate, volume and cost per carrier and message type.

    The carrier is estimated from the number's prefix: it is the carrier that
    first issued the number, so ported numbers count under their old carrier.
    ``volume_share`` is the carrier's part of its message type's volume.
    Columns as :data:`CARRIER_SCHEMA`.

    """
    low, high = wilson_bounds()
    lazy = (
        _aggregate(
            _filtered(frame, start, end, sms_types, campaigns),
            ["carrier", "sms_type"],
            {**_outcomes(), "cost_vnd": _costs()["cost_vnd"]},
        )
        .with_columns(
            delivery_rate=_rate(),
            delivery_rate_low=low,
            delivery_rate_high=high,
            cost_per_delivered_vnd=pl.when(pl.col("delivered") > 0)
            .then(pl.col("cost_vnd") / pl.col("delivered"))
            .otherwise(None),
            volume_share=pl.col("messages") / pl.col("messages").sum().over("sms_type"),
        )
        .sort(["sms_type", "messages", "carrier"], descending=[False, True, False])
    )
    return lazy.select(list(CARRIER_SCHEMA)).cast(dict(CARRIER_SCHEMA)).collect()  # type: ignore[arg-type]


def failure_hotspots(
    frame: AnyFrame,
    *,
    min_messages: int = 100,
    top: int | None = 20,
    start: date | None = None,
    end: date | None = None,
    sms_types: Sequence[int] | None = None,
    campaigns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Campaign x carrier pairs with the worst delivery rates, among those with volume.

    Pairs with fewer than ``min_messages`` messages, or no final row, are left
    out; the rest are ordered by ``delivery_rate`` (worst first), then by
    failed messages. ``campaign_delivery_rate`` is the campaign's rate over
    every carrier, for comparison. Columns as :data:`HOTSPOT_SCHEMA`.

    """
    low, high = wilson_bounds()
    lazy = _filtered(frame, start, end, sms_types, campaigns)
    pairs = (
        _aggregate(
            lazy,
            ["campaign", "carrier"],
            {**_outcomes(), "cost_failed_vnd": _costs()["cost_failed_vnd"]},
        )
        .with_columns(
            campaign_delivery_rate=(
                pl.col("delivered").sum().over("campaign")
                / (pl.col("delivered") + pl.col("failed")).sum().over("campaign")
            ),
            delivery_rate=_rate(),
            delivery_rate_low=low,
            delivery_rate_high=high,
        )
        .filter((pl.col("messages") >= min_messages) & pl.col("delivery_rate").is_not_null())
        .sort(
            ["delivery_rate", "failed", "campaign", "carrier"],
            descending=[False, True, False, False],
        )
    )
    if top is not None:
        pairs = pairs.head(top)
    return pairs.select(list(HOTSPOT_SCHEMA)).cast(dict(HOTSPOT_SCHEMA)).collect()  # type: ignore[arg-type]
