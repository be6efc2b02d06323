"""esms-analytics: what happened to the messages you sent through eSMS.

Fetch the ``GetSmsSentData_V2`` history, decode it to typed Polars frames,
keep it in a Parquet lake that other engines read, and report delivery and
cost. Importing the package touches no disk and no network.
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
from esms_analytics.windows import WindowResult, fetch_window

__version__ = "0.1.0"

__all__ = [
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
    "LakeLockedError",
    "Page",
    "RetryPolicy",
    "TransportError",
    "Window",
    "WindowResult",
    "decode_rows",
    "fetch_window",
]
