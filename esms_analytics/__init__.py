"""esms-analytics: what happened to the messages you sent through eSMS.

Fetch the ``GetSmsSentData_V2`` history, decode it to typed Polars frames,
keep it in a Parquet lake that other engines read, and report delivery and
cost. Importing the package touches no disk and no network. Plots live in
``esms_analytics.plots`` (the only module importing matplotlib) and the
simulator in ``esms_analytics.simulator``; both load on first use, so after
``import esms_analytics`` a notebook can call ``esms_analytics.plots.…`` and
``esms_analytics.simulator.Simulator`` without another import.
"""

from __future__ import annotations

import importlib
import types

from esms_analytics.client import EsmsClient, Page, RetryPolicy, Window
from esms_analytics.decode import SCHEMA, decode_rows
from esms_analytics.errors import (
    AnswerError,
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
from esms_analytics.store import LakeStore, open_store
from esms_analytics.sync import SyncReport, WindowReport, sync
from esms_analytics.windows import WindowResult, fetch_days, fetch_window

__version__ = "0.1.0"

#: Submodules loaded on first attribute access: they pull in matplotlib or a server.
_LAZY_MODULES = frozenset(("plots", "simulator"))

__all__ = [
    "LAKE_SCHEMA",
    "SCHEMA",
    "AnswerError",
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
    "LakeStore",
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
    "open_store",
    "read_lake",
    "sync",
]


def __getattr__(name: str) -> types.ModuleType:
    # PEP 562: `esms_analytics.plots` imports the module the first time it is asked for.
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_MODULES])
