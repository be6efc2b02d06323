"""esms-analytics: what happened to the messages you sent through eSMS.

Fetch the ``GetSmsSentData_V2`` history, decode it to typed Polars frames,
keep it in a Parquet lake that other engines read, and report delivery and
cost. Importing the package touches no disk and no network; plots live in
``esms_analytics.plots`` (the only module importing matplotlib) and the
simulator in ``esms_analytics.simulator``.
"""

from __future__ import annotations

from esms_analytics.client import EsmsClient, Page, RetryPolicy, Window
from esms_analytics.decode import SCHEMA, decode_rows
from esms_analytics.errors import (
    ApiError,
    AuthError,
    ConfigError,
    CorruptPartitionError,
    DecodeError,
    EsmsError,
    IncompleteWindowError,
    LakeError,
    LakeLockedError,
    TransportError,
)
from esms_analytics.lake import LAKE_SCHEMA, LakeInfo, lake_info, read_lake
from esms_analytics.reports import (
    carrier_performance,
    cost_breakdown,
    delivery_by_campaign,
    delivery_trend,
    failure_hotspots,
)
from esms_analytics.sync import SyncReport, WindowReport, sync
from esms_analytics.windows import WindowResult, fetch_days, fetch_window

__version__ = "0.1.0"

__all__ = [
    "LAKE_SCHEMA",
    "SCHEMA",
    "ApiError",
    "AuthError",
    "ConfigError",
    "CorruptPartitionError",
    "DecodeError",
    "EsmsClient",
    "EsmsError",
    "IncompleteWindowError",
    "LakeError",
    "LakeInfo",
    "LakeLockedError",
    "Page",
    "RetryPolicy",
    "SyncReport",
    "TransportError",
    "Window",
    "WindowReport",
    "WindowResult",
    "carrier_performance",
    "cost_breakdown",
    "decode_rows",
    "delivery_by_campaign",
    "delivery_trend",
    "failure_hotspots",
    "fetch_days",
    "fetch_window",
    "lake_info",
    "read_lake",
    "sync",
]
