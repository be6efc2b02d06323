"""The closed vocabularies of eSMS: message types, send statuses, send results, carriers.

Each table maps the code eSMS sends to the label this toolkit shows. The codes
come from the ``GetSmsSentData_V2`` documentation and eSMS's other public
pages; ``unknown`` labels a code eSMS adds later, so a nightly job keeps
running (the raw code is always kept beside its label).
"""

from __future__ import annotations

from typing import Final, Literal
from zoneinfo import ZoneInfo

#: The name of Vietnam's time zone, as Arrow, Parquet and every engine spell it.
TIME_ZONE: Final = "Asia/Ho_Chi_Minh"
#: Vietnam local time: eSMS filters From/To in it and reports ``+0700`` offsets.
VN_TZ: Final = ZoneInfo(TIME_ZONE)

#: The environment variables holding the credentials and the service URL. They live here,
#: not in the client, so the command line names them in --help without importing Polars.
ENV_API_KEY: Final = "ESMS_API_KEY"
ENV_SECRET_KEY: Final = "ESMS_SECRET_KEY"
ENV_BASE_URL: Final = "ESMS_BASE_URL"
#: An Iceberg lake's catalog (:mod:`esms_analytics.tables.iceberg`); ``--catalog-uri``.
ENV_ICEBERG_CATALOG_URI: Final = "ESMS_ICEBERG_CATALOG_URI"

SmsTypeLabel = Literal[
    "advertising",
    "customer_care",
    "fixed_number",
    "viber",
    "zalo_priority",
    "zalo_normal",
    "zalo_follower",
    "unknown",
]

SMS_TYPES: Final[dict[int, SmsTypeLabel]] = {
    1: "advertising",
    2: "customer_care",
    8: "fixed_number",
    23: "viber",
    24: "zalo_priority",
    25: "zalo_normal",
    26: "zalo_follower",
}

SEND_STATUSES: Final[dict[int, str]] = {
    0: "composing",
    1: "in_review",
    2: "queued",
    3: "sending",  # only in older responses
    4: "rejected",
    5: "sent",
    7: "awaiting_report",
}

SEND_RESULTS: Final[dict[int, str]] = {0: "failed", 1: "delivered", 2: "pending"}

CARRIERS: Final[tuple[str, ...]] = (
    "viettel",
    "vinaphone",
    "mobifone",
    "vietnamobile",
    "gmobile",
    "itel",
    "reddi",
    "unknown",
)

#: The send status whose ``SendResult`` is final.
STATUS_SENT: Final = 5
#: A message eSMS refused: final, never delivered.
STATUS_REJECTED: Final = 4
