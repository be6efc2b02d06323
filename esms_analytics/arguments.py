"""The one home of argument helpers: days, day ranges and message types.

Every entry point (the client, ``sync``, ``read_lake``, the reports and the
CLI) takes its dates and types through these functions, so the same value
means the same thing everywhere and a wrong one gets the same clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from esms_analytics.codes import SMS_TYPES
from esms_analytics.errors import ConfigError


def to_date(value: date | str) -> date:
    """Return the date of a ``date``, a ``datetime`` or ``YYYY-MM-DD``; a clear error otherwise.

    >>> to_date("2024-01-17"), to_date(datetime(2024, 1, 17, 23, 59))
    (datetime.date(2024, 1, 17), datetime.date(2024, 1, 17))
    >>> to_date("17/01/2024")
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: '17/01/2024' is not a date; write it as YYYY-MM-DD
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{value!r} is not a date; write it as YYYY-MM-DD") from exc


def optional_date(value: date | str | None) -> date | None:
    """Like :func:`to_date`, with None meaning "no bound"."""
    return None if value is None else to_date(value)


def day_range(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive; a clear error if reversed.

    >>> [day.day for day in day_range(date(2024, 1, 30), date(2024, 2, 1))]
    [30, 31, 1]
    """
    if end < start:
        raise ConfigError(
            f"the range ends ({end}) before it starts ({start}); swap --from and --to"
        )
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


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


def sms_type_list(sms_types: Sequence[int] | None) -> list[int]:
    """Check and de-duplicate the requested types; every type when None.

    >>> sms_type_list([8, 2, 2]), len(sms_type_list(None))
    ([2, 8], 7)
    """
    if sms_types is None:
        return list(SMS_TYPES)
    return sorted({check_sms_type(code) for code in sms_types})
