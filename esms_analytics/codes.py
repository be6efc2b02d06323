"""The closed vocabularies of eSMS: message types, send statuses, send results, carriers.

Each table maps the code eSMS sends to the label this toolkit shows. The codes
come from the ``GetSmsSentData_V2`` documentation and eSMS's other public
pages; ``unknown`` labels a code eSMS adds later, so a nightly job keeps
running (the raw code is always kept beside its label).
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Final, Literal
from zoneinfo import ZoneInfo

from esms_analytics.errors import ConfigError

#: Vietnam local time: eSMS filters From/To in it and reports ``+0700`` offsets.
VN_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")
#: Vietnam has kept UTC+7 without daylight saving since 1975.
VN_OFFSET: Final = timezone(timedelta(hours=7))

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


def check_sms_type(sms_type: int) -> int:
    """Return ``sms_type`` if eSMS has it, else raise a ConfigError listing the valid ones.

    >>> check_sms_type(2)
    2
    >>> check_sms_type(3)
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: SmsType 3 does not exist in eSMS; use one of 1 (advertising), 2 (customer_care), 8 (fixed_number), 23 (viber), 24 (zalo_priority), 25 (zalo_normal), 26 (zalo_follower)
    """
    if isinstance(sms_type, bool) or not isinstance(sms_type, int) or sms_type not in SMS_TYPES:
        valid = ", ".join(f"{code} ({label})" for code, label in SMS_TYPES.items())
        raise ConfigError(f"SmsType {sms_type!r} does not exist in eSMS; use one of {valid}")
    return sms_type
