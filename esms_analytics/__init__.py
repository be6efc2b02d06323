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
import sys
import types
import typing

from esms_analytics._version import __version__ as __version__
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
    NewerLakeError,
    ServiceUnreachableError,
    StoppedError,
    TransportError,
)

if typing.TYPE_CHECKING:
    from esms_analytics.check import LakeCheck, LakeInfo, check_lake, lake_info
    from esms_analytics.client import EsmsClient, Page, RetryPolicy, Window
    from esms_analytics.convert import Conversion, pseudonymise_lake
    from esms_analytics.decode import SCHEMA, decode_rows
    from esms_analytics.lake import LAKE_SCHEMA, read_lake, reading_lake
    from esms_analytics.privacy.policy import PrivacyPolicy
    from esms_analytics.reports import (
        carrier_performance,
        cost_breakdown,
        delivery,
        delivery_by_campaign,
        delivery_trend,
        failure_hotspots,
        unique_recipients,
    )
    from esms_analytics.store import LakeStore, open_store
    from esms_analytics.sync import SyncReport, WindowReport, sync
    from esms_analytics.windows import WindowResult, fetch_days, fetch_window


#: The module each public name lives in. Names load on first use (PEP 562), so importing
#: the package, and the command line's --help, do not wait for Polars and PyArrow.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("EsmsClient", "Page", "RetryPolicy", "Window"), "client"),
    **dict.fromkeys(("SCHEMA", "decode_rows"), "decode"),
    **dict.fromkeys(("LakeCheck", "LakeInfo", "check_lake", "lake_info"), "check"),
    **dict.fromkeys(("LAKE_SCHEMA", "read_lake", "reading_lake"), "lake"),
    **dict.fromkeys(("Conversion", "pseudonymise_lake"), "convert"),
    "PrivacyPolicy": "privacy.policy",
    **dict.fromkeys(
        (
            "carrier_performance",
            "cost_breakdown",
            "delivery",
            "delivery_by_campaign",
            "delivery_trend",
            "failure_hotspots",
            "unique_recipients",
        ),
        "reports",
    ),
    **dict.fromkeys(("LakeStore", "open_store"), "store"),
    **dict.fromkeys(("SyncReport", "WindowReport", "sync"), "sync"),
    **dict.fromkeys(("WindowResult", "fetch_days", "fetch_window"), "windows"),
}
#: Submodules loaded on first attribute access: they pull in matplotlib or a server.
_LAZY_MODULES = frozenset(("plots", "simulator"))

__all__ = [
    "LAKE_SCHEMA",
    "SCHEMA",
    "AnswerError",
    "ApiError",
    "AuthError",
    "ConfigError",
    "Conversion",
    "CorruptPartitionError",
    "DecodeError",
    "EsmsClient",
    "EsmsError",
    "IncompleteWindowError",
    "LakeCheck",
    "LakeError",
    "LakeInfo",
    "LakeLockedError",
    "LakeStore",
    "NewerLakeError",
    "Page",
    "PrivacyPolicy",
    "RetryPolicy",
    "ServiceUnreachableError",
    "StoppedError",
    "SyncReport",
    "TransportError",
    "Window",
    "WindowReport",
    "WindowResult",
    "carrier_performance",
    "check_lake",
    "cost_breakdown",
    "decode_rows",
    "delivery",
    "delivery_by_campaign",
    "delivery_trend",
    "failure_hotspots",
    "fetch_days",
    "fetch_window",
    "lake_info",
    "open_store",
    "pseudonymise_lake",
    "read_lake",
    "reading_lake",
    "sync",
    "unique_recipients",
]


class _Package(types.ModuleType):
    """The package module: a submodule named like a public name does not replace it."""

    def __setattr__(self, name: str, value: object) -> None:
        # Loading `esms_analytics.sync` makes the import system set the package's `sync` to
        # the module; the public `sync` is the function, as `from esms_analytics import sync`
        # promises, so keep the function.
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> typing.Any:
    # PEP 562: a public name, or `esms_analytics.plots`, is imported the first time it is used.
    if name in _LAZY_MODULES:
        module: types.ModuleType = importlib.import_module(f"{__name__}.{name}")
        return module
    if name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES, *_LAZY_MODULES})
