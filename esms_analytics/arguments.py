"""The one home of argument helpers: days, day ranges, message types, names and counts.

Every entry point (the client, ``sync``, ``read_lake``, the reports and the
CLI) takes its arguments through these functions, so the same value means the
same thing everywhere and a wrong one gets the same clear error: a
:class:`~esms_analytics.errors.ConfigError` that names the argument, the value
and what it accepts.

=================  ==========================================================
argument           accepted
=================  ==========================================================
``start``/``end``  a ``date``, a ``datetime`` (its Vietnam day) or an ISO string
``sms_types``      one code or label (``2``, ``"2"``, ``"customer_care"``) or a
                   collection of them
``campaigns``      one name or a collection of names
counts             whole numbers of at least 0 (``top``, ``min_messages``)
=================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import TypeAlias

from esms_analytics.codes import SMS_TYPES, VN_TZ
from esms_analytics.errors import ConfigError

DateLike: TypeAlias = date | datetime | str
#: One message type or several, as codes or labels.
SmsTypes: TypeAlias = int | str | Iterable[int | str]
#: One campaign name or several.
Campaigns: TypeAlias = str | Iterable[str]


def _named(argument: str | None, value: object) -> str:
    return f"{argument}={value!r}" if argument else repr(value)


def to_date(value: DateLike, argument: str | None = None) -> date:
    """Return the date of a ``date``, a ``datetime`` or an ISO string; a clear error otherwise.

    An aware ``datetime`` counts on its Vietnam calendar day, the day the lake's
    partitions are named after.

    >>> to_date("2024-01-17"), to_date(datetime(2024, 1, 17, 23, 59))
    (datetime.date(2024, 1, 17), datetime.date(2024, 1, 17))
    >>> to_date("2024-01-17T08:00:00")
    datetime.date(2024, 1, 17)
    >>> to_date("17/01/2024")
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: '17/01/2024' is not a date; write it as YYYY-MM-DD
    >>> to_date(20240117, "start")
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: start=20240117 is not a date; give a date, a datetime or 'YYYY-MM-DD'
    """
    if isinstance(value, datetime):
        return (value.astimezone(VN_TZ) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ConfigError(
            f"{_named(argument, value)} is not a date; give a date, a datetime or 'YYYY-MM-DD'"
        )
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        try:
            return to_date(datetime.fromisoformat(value))
        except ValueError:
            raise ConfigError(
                f"{_named(argument, value)} is not a date; write it as YYYY-MM-DD"
            ) from exc


def optional_date(value: DateLike | None, argument: str | None = None) -> date | None:
    """Like :func:`to_date`, with None meaning "no bound"."""
    return None if value is None else to_date(value, argument)


def date_bounds(start: DateLike | None, end: DateLike | None) -> tuple[date | None, date | None]:
    """``start`` and ``end`` as dates (None for no bound); a clear error if reversed.

    >>> date_bounds("2026-11-01", None)
    (datetime.date(2026, 11, 1), None)
    >>> date_bounds("2026-11-02", "2026-11-01")
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: end=2026-11-01 is before start=2026-11-02; swap them
    """
    first, last = optional_date(start, "start"), optional_date(end, "end")
    if first is not None and last is not None and last < first:
        raise ConfigError(f"end={last} is before start={first}; swap them")
    return first, last


def check_range(start: date, end: date) -> None:
    """Refuse a range of days whose end comes before its start (``--from``/``--to``).

    >>> check_range(date(2024, 2, 1), date(2024, 1, 30))
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: the range ends (2024-01-30) before it starts (2024-02-01); swap --from and --to
    """
    if end < start:
        raise ConfigError(
            f"the range ends ({end}) before it starts ({start}); swap --from and --to"
        )


def day_range(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive; a clear error if reversed.

    >>> [day.day for day in day_range(date(2024, 1, 30), date(2024, 2, 1))]
    [30, 31, 1]
    """
    check_range(start, end)
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def _valid_types() -> str:
    return ", ".join(f"{code} ({label})" for code, label in SMS_TYPES.items())


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
        raise ConfigError(
            f"SmsType {sms_type!r} does not exist in eSMS; use one of {_valid_types()}"
        )
    return sms_type


def _sms_type_code(value: object, argument: str) -> int:
    codes_by_label = {label: code for code, label in SMS_TYPES.items()}
    if isinstance(value, str):
        text = value.strip()
        if text in codes_by_label:
            return codes_by_label[text]
        if text.isdigit() and int(text) in SMS_TYPES:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value in SMS_TYPES:
        return value
    raise ConfigError(
        f"{argument} has {value!r}, which is not an eSMS message type; "
        f"use codes or labels: {_valid_types()}"
    )


def sms_type_codes(value: SmsTypes | None, argument: str = "sms_types") -> list[int] | None:
    """Message types as sorted, distinct codes; None (every type) stays None.

    >>> sms_type_codes(2), sms_type_codes("customer_care"), sms_type_codes(("2", 8, "viber"))
    ([2], [2], [2, 8, 23])
    >>> sms_type_codes([3])
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: sms_types has 3, which is not an eSMS message type; use codes or labels: 1 (advertising), 2 (customer_care), 8 (fixed_number), 23 (viber), 24 (zalo_priority), 25 (zalo_normal), 26 (zalo_follower)
    """
    if value is None:
        return None
    items = _items(value, argument, "a message type code or label, or a collection of them")
    return sorted({_sms_type_code(item, argument) for item in items})


def sms_type_list(sms_types: SmsTypes | None) -> list[int]:
    """Check and de-duplicate the requested types; every type when None.

    >>> sms_type_list([8, 2, 2]), len(sms_type_list(None))
    ([2, 8], 7)
    """
    codes = sms_type_codes(sms_types)
    return list(SMS_TYPES) if codes is None else codes


def campaign_list(value: Campaigns | None, argument: str = "campaigns") -> list[str] | None:
    """Campaign names as a list (one name is one campaign, not its letters); None stays None.

    >>> campaign_list("OTP đăng nhập"), campaign_list(("A", " B "))
    (['OTP đăng nhập'], ['A', 'B'])
    >>> campaign_list(7)
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: campaigns=7 is not accepted; give a campaign name or a collection of names
    """
    if value is None:
        return None
    items = _items(value, argument, "a campaign name or a collection of names", (str,))
    names = [item for item in items if isinstance(item, str)]
    if len(names) < len(items):
        raise ConfigError(f"{_named(argument, value)} holds a value that is not a campaign name")
    # Reports compare with trimmed names: a stray space must not hide a campaign.
    return [name.strip() for name in names]


def _items(
    value: object, argument: str, accepted: str, scalars: tuple[type, ...] = (str, int)
) -> list[object]:
    if isinstance(value, scalars) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, Collection) or isinstance(value, bytes | dict):
        raise ConfigError(f"{_named(argument, value)} is not accepted; give {accepted}")
    items = list(value)
    if not items:
        raise ConfigError(
            f"{argument} is empty, which would select nothing; give {accepted}, or None for all"
        )
    return items


def count(value: object, argument: str, *, minimum: int = 0) -> int:
    """Return ``value`` if a whole number of at least ``minimum``, else a ConfigError.

    >>> count(5, "top")
    5
    >>> count(-1, "top")
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: top=-1 is not accepted; give a whole number of at least 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(
            f"{_named(argument, value)} is not accepted; give a whole number of at least {minimum}"
        )
    return value


def optional_count(value: object, argument: str, *, minimum: int = 0) -> int | None:
    """Like :func:`count`, with None meaning "no limit"."""
    return None if value is None else count(value, argument, minimum=minimum)


def one_of(value: object, argument: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; a ConfigError listing them otherwise.

    >>> one_of("1w", "every", ("1d", "1w", "1mo"))
    '1w'
    >>> one_of("2w", "every", ("1d", "1w", "1mo"))
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: every='2w' is not accepted; use one of 1d, 1w, 1mo
    """
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(
            f"{_named(argument, value)} is not accepted; use one of {', '.join(choices)}"
        )
    return value


def name_list(value: object, argument: str, choices: Sequence[str]) -> list[str]:
    """One name or a collection of distinct names, each one of ``choices``.

    >>> name_list("carrier", "by", ("campaign", "carrier", "date"))
    ['carrier']
    >>> name_list(["carrier", "bogus"], "by", ("campaign", "carrier", "date"))
    Traceback (most recent call last):
    ...
    esms_analytics.errors.ConfigError: by has 'bogus', which is not accepted; use campaign, carrier or date
    """
    accepted = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    items = _items(value, argument, f"one of {accepted} or a collection of them", (str,))
    for item in items:
        if not isinstance(item, str) or item not in choices:
            raise ConfigError(f"{argument} has {item!r}, which is not accepted; use {accepted}")
    if len(set(items)) < len(items):
        raise ConfigError(f"{_named(argument, value)} names a dimension twice; name each once")
    return [str(item) for item in items]
