"""Decode ``GetSmsSentData_V2`` rows into the canonical, typed Polars table.

:data:`SCHEMA` is the single source of truth for column names and dtypes;
every later part (lake, reports) and every engine reading the lake relies on
it. Decoding is a handful of vectorised Polars expressions over a whole page
or day, never a Python loop over rows.

Strictness: a value that is present but cannot be decoded raises
:class:`~esms_analytics.errors.DecodeError` naming the field, the raw value and
the row's ``ReferenceId``. Unknown status, result or type *codes* are not
errors: the raw code is kept, the label is ``unknown`` and one warning per code
is logged, so a nightly job survives eSMS adding a code.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import polars as pl

from esms_analytics.codes import (
    CARRIERS,
    SEND_RESULTS,
    SEND_STATUSES,
    SMS_TYPES,
    STATUS_REJECTED,
    STATUS_SENT,
    TIME_ZONE,
)
from esms_analytics.errors import DecodeError
from esms_analytics.wire import RAW_SCHEMA

logger = logging.getLogger("esms_analytics")

UNKNOWN: Final = "unknown"
CARRIER_DTYPE: Final = pl.Enum(list(CARRIERS))
SMS_TYPE_LABEL_DTYPE: Final = pl.Enum([*SMS_TYPES.values(), UNKNOWN])
SEND_STATUS_LABEL_DTYPE: Final = pl.Enum([*SEND_STATUSES.values(), UNKNOWN])
SEND_RESULT_LABEL_DTYPE: Final = pl.Enum([*SEND_RESULTS.values(), UNKNOWN])
ENCODING_DTYPE: Final = pl.Enum(["gsm7", "ucs2"])

#: The canonical table: one row per (message, receiver) as eSMS reports it.
SCHEMA: Final = pl.Schema(
    {
        "sms_id": pl.Int64(),
        "reference_id": pl.String(),
        "campaign": pl.String(),
        "content": pl.String(),
        "phone": pl.String(),
        "phone_e164": pl.String(),
        "carrier": CARRIER_DTYPE,
        "sell_price": pl.Float64(),
        "sms_type": pl.Int16(),
        "sms_type_label": SMS_TYPE_LABEL_DTYPE,
        "send_status": pl.Int8(),
        "send_status_label": SEND_STATUS_LABEL_DTYPE,
        "send_result": pl.Int8(),
        "send_result_label": SEND_RESULT_LABEL_DTYPE,
        "is_final": pl.Boolean(),
        "sent_at": pl.Datetime("us", TIME_ZONE),
        "encoding": ENCODING_DTYPE,
        "segments": pl.Int16(),
        "length": pl.Int32(),
    }
)

_WCF_DATE: Final = r"^\\?/Date\((-?\d+)([+-]\d{4})?\)\\?/$"
_LEGACY_DATE_FORMAT: Final = "%d/%m/%Y %H:%M:%S"
# .NET DateTime covers years 1 to 9999; /Date()/ values outside it are not dates.
_MIN_EPOCH_MS: Final = -62_135_596_800_000
_MAX_EPOCH_MS: Final = 253_402_300_799_999

# 2018 conversion of 11-digit mobile numbers to 10 digits (old prefix -> new).
OLD_PREFIXES: Final[Mapping[str, str]] = {
    **{f"016{d}": f"03{d}" for d in "23456789"},
    "0120": "070",
    "0121": "079",
    "0122": "077",
    "0126": "076",
    "0128": "078",
    "0123": "083",
    "0124": "084",
    "0125": "085",
    "0127": "081",
    "0129": "082",
    "0186": "056",
    "0188": "058",
    "0199": "059",
}

#: Three-digit national prefixes of Vietnamese mobile numbers, by original carrier.
MOBILE_PREFIXES: Final[Mapping[str, str]] = {
    **dict.fromkeys(["086", "096", "097", "098", *(f"03{d}" for d in "23456789")], "viettel"),
    **dict.fromkeys(["088", "091", "094", *(f"08{d}" for d in "12345")], "vinaphone"),
    **dict.fromkeys(["089", "090", "093", "070", *(f"07{d}" for d in "6789")], "mobifone"),
    **dict.fromkeys(["092", "056", "058", "052"], "vietnamobile"),
    **dict.fromkeys(["099", "059"], "gmobile"),
    "087": "itel",
    "055": "reddi",
}

# GSM 03.38: the basic set, and the extension set whose characters take two septets.
GSM7_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION: Final = "\f^{}\\[~]|€"
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


def _char_class(chars: str) -> str:
    escaped = "".join(f"\\x{{{ord(char):x}}}" for char in chars)
    return f"[{escaped}]"


_GSM7_TEXT: Final = f"^{_char_class(GSM7_BASIC + GSM7_EXTENSION)}*$"
_GSM7_EXT_CHAR: Final = _char_class(GSM7_EXTENSION)
_ASTRAL_CHAR: Final = r"[\x{10000}-\x{10FFFF}]"

_warned_codes: set[tuple[str, int]] = set()
_warned_lock = threading.Lock()


def empty_frame() -> pl.DataFrame:
    """Return an empty frame with exactly the canonical schema."""
    return pl.DataFrame(schema=SCHEMA)


def decode_rows(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Decode ``SentData`` rows, as the service sends them, to the canonical frame.

    Parameters
    ----------
    rows : sequence of dict
        ``SentData`` entries; numbers may be strings and strings numbers.

    Returns
    -------
    polars.DataFrame
        One row per input row, in input order, with :data:`SCHEMA`.

    Raises
    ------
    DecodeError
        A value is present but cannot be decoded, or a required field is missing.

    Examples
    --------
    >>> frame = decode_rows([{
    ...     "Campaign": "Chiến dịch 02/10/2023", "Content": "Cam on quy khach",
    ...     "Phone": "0901888484", "ReferenceId": "35781d6c25524e40a035c26663189549",
    ...     "SellPrice": "345.0", "SendResult": 1, "SendStatus": "5",
    ...     "SentTime": "/Date(1705484048995+0700)/", "SmsId": 29028845, "SmsType": 2}])
    >>> frame.select("phone_e164", "carrier", "send_result_label", "is_final").row(0)
    ('+84901888484', 'mobifone', 'delivered', True)
    >>> frame["sent_at"][0]
    datetime.datetime(2024, 1, 17, 16, 34, 8, 995000, tzinfo=zoneinfo.ZoneInfo(key='Asia/Ho_Chi_Minh'))
    >>> frame.select("encoding", "segments", "length").row(0)
    ('gsm7', 1, 16)
    """
    if not rows:
        return empty_frame()
    return decode_raw(pl.from_dicts(rows, schema=RAW_SCHEMA, strict=False))


def decode_raw(raw: pl.DataFrame) -> pl.DataFrame:
    """Decode rows already in a frame of strings with :data:`RAW_SCHEMA` (the wire's fields).

    The client builds such frames straight from the response bytes, which is
    the fast path; :func:`decode_rows` builds one from dicts.

    A page as today's service sends it is decoded by one Polars query. Whether
    every row passed the checks is then read from null counts, which cost no
    query: a typed column is null exactly where its field was missing, blank
    or undecodable. Any other page (older field forms, blanks, bad values) is
    decoded thoroughly: the checks run one by one, the first to fail names its
    first bad row.
    """
    if raw.height == 0:
        return empty_frame()
    # A batch of pages comes as one chunk per page, and every expression pays a fixed cost
    # per chunk (its regexes run chunk by chunk): a batch of 100 pages decodes in about 15%
    # less CPU as one chunk, and the frame it gives is one chunk for the steps after.
    raw = raw.rechunk()
    decoded = _decode_current_form(raw)
    if decoded is None:
        decoded = _decode_thoroughly(raw)
    unknown = [decoded.drop_in_place(name).null_count() for name in _LABEL_WITNESSES]
    if any(unknown):
        for column, table in _CODE_TABLES:
            _warn_unknown(decoded[column], column, table)
    return decoded


def _decode_current_form(raw: pl.DataFrame) -> pl.DataFrame | None:
    # None when the page has older field forms, or when a row did not come out typed.
    if _carries_values(raw, "SentStatus") or _carries_values(raw, "RefercenceId"):
        return None
    decoded = _collect_output(_staged(raw, _CURRENT_FORM), _CURRENT_FORM)
    return decoded if _every_row_typed(raw, decoded) else None


def _decode_thoroughly(raw: pl.DataFrame) -> pl.DataFrame:
    form = _Form(
        current=False,
        legacy_result=_carries_values(raw, "SentStatus"),
        misspelt_reference=_carries_values(raw, "RefercenceId"),
    )
    staged = _run(_staged(raw, form))
    _raise_first_failure(staged)
    return _collect_output(staged.lazy(), form)


def _carries_values(raw: pl.DataFrame, field: str) -> bool:
    # A null count is known without looking at the rows: no query.
    return raw[field].null_count() < raw.height


def _every_row_typed(raw: pl.DataFrame, decoded: pl.DataFrame) -> bool:
    # A required number is null where its field was missing, blank or undecodable;
    # sent_at where SentTime was, or outside .NET's range, or in the older local form;
    # a price where it was blank, undecodable or not finite, which a null field is not.
    return not (
        raw["Phone"].null_count()
        or any(decoded[column].null_count() for column in _REQUIRED_NUMBERS)
        or decoded["sent_at"].null_count()
        or decoded["sell_price"].null_count() != raw["SellPrice"].null_count()
    )


def _staged(raw: pl.DataFrame, form: _Form) -> pl.LazyFrame:
    # Each intermediate column is computed once, then reused by the next stage.
    staged = raw.lazy()
    for columns in _stages(form):
        staged = staged.with_columns(*columns)
    return staged


def _collect_output(staged: pl.LazyFrame, form: _Form) -> pl.DataFrame:
    # The label witnesses ride along for their null counts (an unknown code has no label).
    return _run(staged.select(*_output(form), *_LABEL_WITNESSES))


def _run(query: pl.LazyFrame) -> pl.DataFrame:
    # A page is a small query: the in-memory engine starts it faster than the streaming one.
    return query.collect(engine="in-memory", optimizations=_AS_WRITTEN)


def _raise_first_failure(staged: pl.DataFrame) -> None:
    # The checks in their documented order: the first that fails names its first bad row.
    masks = staged.select(
        *(failed.alias(f"_check_{number}") for number, (_, failed, _) in enumerate(_CHECKS))
    )
    for mask, (field, _, expected) in zip(masks.iter_columns(), _CHECKS, strict=True):
        if mask.any():
            _raise_bad(staged, mask, field, expected)


def is_final_expr() -> pl.Expr:
    """Flag the rows that will not change any more: a final result, or rejected."""
    status, result = pl.col("send_status"), pl.col("send_result")
    return ((status == STATUS_SENT) & result.is_between(0, 1)) | (status == STATUS_REJECTED)


def _subscriber(phone: pl.Expr) -> pl.Expr:
    # The phone's digits, separators and one leading + dropped, when they can be a mobile
    # number: 84 + 9 or 10 digits, 0 + 9 or 10 digits, or 9 digits without the trunk 0.
    # Null for anything else, which then has no E.164 form and an unknown carrier.
    # A match and a strip, not an extract: a regex without captures runs on the fast engine.
    digits = phone.str.replace_all(r"[\s.\-()]", "")
    return pl.when(digits.str.contains(_SUBSCRIBER)).then(digits.str.strip_prefix("+"))


def _phone_key(subscriber: pl.Expr) -> pl.Expr:
    # What comes before the last seven digits (84 + 2 or 3 digits, 0 + 2 or 3, or 2 digits)
    # is looked up at once, as the old 11-digit prefixes (renamed in 2018) and the current
    # ones are: its position in _PHONE_KEYS, null unless it is a mobile prefix.
    return subscriber.str.head(-7).cast(_PHONE_KEY_DTYPE, strict=False).to_physical()


def _utf16_units(content: pl.Expr, *, gsm7: pl.Expr, length: pl.Expr) -> pl.Expr:
    # GSM-7 extension characters take two septets, astral characters two UTF-16 units.
    # Each count runs only on the rows of its encoding (the others are null to it).
    extension = pl.when(gsm7).then(content).str.count_matches(_GSM7_EXT_CHAR)
    astral = pl.when(~gsm7).then(content).str.count_matches(_ASTRAL_CHAR)
    return length + pl.coalesce(extension, astral)


def _parts(units: pl.Expr, single: int, multi: int) -> pl.Expr:
    # One part up to ``single`` units, else parts of ``multi``: the encoding is chosen
    # once, outside, rather than by a when/then inside each of three uses.
    return pl.when(units <= single).then(1).otherwise((units + (multi - 1)) // multi)


def _label(column: str, table: Mapping[int, str], dtype: pl.Enum) -> pl.Expr:
    # Codes are small integers: a list indexed by every code a byte holds, null for an
    # unknown one (the output writes "unknown", the warning looks for the nulls). Codes
    # outside 0..255 become null in the cast, so they are unknown too.
    labels = pl.Series([table.get(code) for code in range(256)], dtype=dtype)
    return pl.lit(labels).gather(pl.col(column).cast(pl.UInt8, strict=False))


def _integer(column: str, dtype: type[pl.DataType], form: _Form) -> pl.Expr:
    # 5, "5" and 5.0 (which arrives as "5.0") are the same integer. Today's service sends
    # integers as integers: "5.0" or " 5 " fail the plain cast, and the null they leave
    # sends the page the thorough way.
    if form.current:
        return pl.col(column).cast(dtype, strict=False)
    return pl.col(column).str.replace(r"\.0*$", "").cast(dtype, strict=False)


def _price(form: _Form) -> pl.Expr:
    # In a page of the current form, NaN and infinity become null, so that the null count
    # sends the page the thorough way, where a check names them.
    price = pl.col("SellPrice").cast(pl.Float64, strict=False)
    return pl.when(price.is_finite()).then(price) if form.current else price


def _legacy_result(sent_status: pl.Expr) -> pl.Expr:
    # Older responses have a boolean SentStatus instead of SendResult.
    lowered = sent_status.str.to_lowercase()
    return (
        pl.when((lowered == "true") | (lowered == "1"))
        .then(pl.lit("1"))
        .when((lowered == "false") | (lowered == "0"))
        .then(pl.lit("0"))
    )


def _blank_as_null(field: str) -> pl.Expr:
    # A when/then, not replace("", None): replace costs a join per column and query.
    stripped = pl.col(field).str.strip_chars()
    return pl.when(stripped != "").then(stripped).alias(field)


def _raise_bad(raw: pl.DataFrame, mask: pl.Series, field: str, expected: str) -> None:
    bad = raw.filter(mask)
    raise DecodeError(
        field=field,
        value=bad[field][0] if field in bad.columns else None,
        reference_id=bad["ReferenceId"][0] or "",
        rows=bad.height,
        expected=expected,
    )


def _warn_unknown(codes: pl.Series, column: str, table: Mapping[int, str]) -> None:
    unknown = codes.filter(~codes.is_in(list(table)) & codes.is_not_null()).unique().to_list()
    for code in unknown:
        with _warned_lock:
            if (column, code) in _warned_codes:
                continue
            _warned_codes.add((column, code))
        logger.warning(
            "unknown %s code %s: kept as the raw code and labelled 'unknown'; "
            "eSMS may have added it",
            column,
            code,
        )


# -- the query, built once per form of page ---------------------------------------
# Expressions are plain values: building them once spares every page the Python work
# of building them again. Polars plans a query in time proportional to its expressions
# (some microseconds each), and for a 500-row page that planning is most of the cost, so
# each expression below is there because the page's form needs it.

_NUMERIC_FIELDS: Final = ("SmsId", "SellPrice", "SmsType", "SendStatus", "SendResult", "SentStatus")
_REQUIRED_FIELDS: Final = ("SmsId", "Phone", "SmsType", "SendStatus", "SentTime", "SendResult")
_NUMBER_COLUMNS: Final = (
    ("SmsId", "sms_id"),
    ("SellPrice", "sell_price"),
    ("SmsType", "sms_type"),
    ("SendStatus", "send_status"),
    ("SendResult", "send_result"),
)
_REQUIRED_NUMBERS: Final = ("sms_id", "sms_type", "send_status", "send_result")
_CODE_TABLES: Final[tuple[tuple[str, Mapping[int, str]], ...]] = (
    ("sms_type", SMS_TYPES),
    ("send_status", SEND_STATUSES),
    ("send_result", SEND_RESULTS),
)
_LABEL_DTYPES: Final = {
    "sms_type": SMS_TYPE_LABEL_DTYPE,
    "send_status": SEND_STATUS_LABEL_DTYPE,
    "send_result": SEND_RESULT_LABEL_DTYPE,
}
#: Staged label columns, null for an unknown code, selected beside the output.
_LABEL_WITNESSES: Final = tuple(f"_{column}_label" for column, _ in _CODE_TABLES)
_SUBSCRIBER: Final = r"^\+?(?:(?:84|0)\d{9,10}|[1-9]\d{8})$"


def _phone_keys() -> dict[str, tuple[str, str]]:
    # Each way a mobile prefix can start a number, to (E.164 start, carrier): the current
    # 3-digit prefixes as 0xx, 84xx and xx, the old 4-digit ones as 0xxx and 84xxx, which
    # take their new prefix. The lengths (2 to 5) and first digits keep the keys apart.
    keys: dict[str, tuple[str, str]] = {}
    for prefix, carrier in MOBILE_PREFIXES.items():
        for key in (prefix, "84" + prefix[1:], prefix[1:]):
            keys[key] = ("+84" + prefix[1:], carrier)
    for old, new in OLD_PREFIXES.items():
        for key in (old, "84" + old[1:]):
            keys[key] = ("+84" + new[1:], MOBILE_PREFIXES[new])
    return keys


_PHONE_KEYS: Final = _phone_keys()
_PHONE_KEY_DTYPE: Final = pl.Enum(list(_PHONE_KEYS))
_E164_START_BY_KEY: Final = pl.Series([start for start, _ in _PHONE_KEYS.values()])
_CARRIER_BY_KEY: Final = pl.Series(
    [carrier for _, carrier in _PHONE_KEYS.values()], dtype=CARRIER_DTYPE
)
#: The encodings by the integer of the GSM-7 flag (False, True); a null flag is UCS-2.
_ENCODINGS: Final = pl.Series(["ucs2", "gsm7"], dtype=ENCODING_DTYPE)
_EPOCH_IN_RANGE: Final = pl.col("epoch_ms").is_between(_MIN_EPOCH_MS, _MAX_EPOCH_MS)
#: The stages are already what the optimiser would make of them.
_AS_WRITTEN: Final = pl.QueryOptFlags.none()


@dataclass(frozen=True)
class _Form:
    """The form of a page, which decides the expressions that decode it.

    ``current``: as today's service sends it (integers as integers, SentTime as
    ``/Date()/``, no blanks); such a decode is kept only if every row came out
    typed. Otherwise blanks become nulls, integers may end in ``.0``, SentTime
    may take the older local form and the checks run one by one; with
    ``legacy_result`` and ``misspelt_reference`` the older boolean SentStatus
    and the documented RefercenceId spelling are read too.
    """

    current: bool
    legacy_result: bool = False
    misspelt_reference: bool = False


_CURRENT_FORM: Final = _Form(current=True)


@functools.cache
def _stages(form: _Form) -> tuple[tuple[pl.Expr, ...], ...]:
    send_result = pl.col("SendResult")
    if form.legacy_result:
        send_result = pl.coalesce(send_result, _legacy_result(pl.col("SentStatus")))
    normalised = (
        send_result.alias("SendResult"),
        _phone_key(pl.col("_subscriber")).alias("_phone_key"),
        pl.col("SentTime").str.extract(_WCF_DATE, 1).cast(pl.Int64, strict=False).alias("epoch_ms"),
    )
    typed = (
        *(
            _integer(field, SCHEMA[column].base_type(), form).alias(column)
            for field, column in _NUMBER_COLUMNS
            if field != "SellPrice"
        ),
        _price(form).alias("sell_price"),
        _utf16_units(pl.col("Content"), gsm7=pl.col("_gsm7"), length=pl.col("length")).alias(
            "_units"
        ),
    )
    if not form.current:
        # Only values that are not /Date()/ are tried as the old local form.
        local_form = pl.when(pl.col("epoch_ms").is_null()).then(pl.col("SentTime"))
        local_time = local_form.str.strptime(pl.Datetime("us"), _LEGACY_DATE_FORMAT, strict=False)
        typed = (*typed, local_time.alias("local_time"))
    looked_up = (
        *(
            _label(column, table, _LABEL_DTYPES[column]).alias(f"_{column}_label")
            for column, table in _CODE_TABLES
        ),
    )
    return _cleaned(form), normalised, typed, looked_up


def _cleaned(form: _Form) -> tuple[pl.Expr, ...]:
    # Surrounding blanks and empty strings of numeric fields are as absent as nulls. Today's
    # service sends neither: a page of the current form leaves them be, and where they
    # were, a typed column is null and the page goes the thorough way.
    reference = pl.col("ReferenceId")
    if form.misspelt_reference:
        reference = pl.coalesce(reference, "RefercenceId")
    fields = (*_NUMERIC_FIELDS, "SentTime") if form.legacy_result else _TYPED_FIELDS
    return (
        *(_blank_as_null(field) for field in fields if not form.current),
        reference.fill_null("").alias("ReferenceId"),
        _subscriber(pl.col("Phone")).alias("_subscriber"),
        pl.col("Content").str.contains(_GSM7_TEXT).alias("_gsm7"),
        pl.col("Content").str.len_chars().alias("length"),
    )


_TYPED_FIELDS: Final = tuple(
    field for field in (*_NUMERIC_FIELDS, "SentTime") if field != "SentStatus"
)

#: (field, failed, what was expected), in the order the errors are reported.
_CHECKS: Final[tuple[tuple[str, pl.Expr, str], ...]] = (
    *(
        (field, pl.col(field).is_null(), "the field is required but missing or null")
        for field in _REQUIRED_FIELDS
    ),
    *(
        (
            field,
            pl.col(field).is_not_null() & pl.col(column).is_null(),
            f"expected a number fitting {SCHEMA[column]}",
        )
        for field, column in _NUMBER_COLUMNS
    ),
    # NaN and infinity parse as floats but are no price: a cost report would turn to NaN.
    # Negative prices stay (refunds may exist).
    (
        "SellPrice",
        ~pl.col("sell_price").is_finite().fill_null(True),
        "expected a finite number, not NaN or infinity",
    ),
    (
        "SentTime",
        ~(_EPOCH_IN_RANGE.fill_null(False) | pl.col("local_time").is_not_null()),
        "expected /Date(milliseconds+0700)/ or dd/MM/yyyy HH:mm:ss",
    ),
)


@functools.cache
def _output(form: _Form) -> tuple[pl.Expr, ...]:
    # The canonical columns in SCHEMA's order, cast where the expression's dtype differs.
    gsm7, units = pl.col("_gsm7"), pl.col("_units")
    # An integer cast to a zoned datetime is read as microseconds since the epoch, UTC: the
    # number is UTC milliseconds, the +0700 only names the server's zone. Null outside
    # .NET's range, which is how decode_raw learns, without a query, that a row failed.
    sent_at = (pl.when(_EPOCH_IN_RANGE).then(pl.col("epoch_ms")) * 1000).cast(SCHEMA["sent_at"])
    if not form.current:
        sent_at = pl.coalesce(sent_at, pl.col("local_time").dt.replace_time_zone(TIME_ZONE))
    columns = {
        "sms_id": pl.col("sms_id"),
        "reference_id": pl.col("ReferenceId"),
        "campaign": pl.col("Campaign"),
        "content": pl.col("Content"),
        "phone": pl.col("Phone"),
        "phone_e164": pl.lit(_E164_START_BY_KEY).gather(pl.col("_phone_key"))
        + pl.col("_subscriber").str.tail(7),
        "carrier": pl.lit(_CARRIER_BY_KEY)
        .gather(pl.col("_phone_key"))
        .fill_null(pl.lit(UNKNOWN, CARRIER_DTYPE)),
        "sell_price": pl.col("sell_price"),
        **{
            name: expression
            for column, dtype in _LABEL_DTYPES.items()
            for name, expression in (
                (column, pl.col(column)),
                (f"{column}_label", pl.col(f"_{column}_label").fill_null(pl.lit(UNKNOWN, dtype))),
            )
        },
        "is_final": is_final_expr(),
        "sent_at": sent_at,
        # A gather, not when/then of strings cast to the Enum: the cast looks every row up.
        "encoding": pl.lit(_ENCODINGS).gather(gsm7.fill_null(value=False).cast(pl.UInt8)),
        "segments": pl.when(gsm7)
        .then(_parts(units, GSM7_SINGLE, GSM7_MULTI))
        .otherwise(_parts(units, UCS2_SINGLE, UCS2_MULTI)),
        "length": pl.col("length"),
    }
    return tuple(
        expression.alias(name)
        if name in ("sms_id", "reference_id", "sell_price", "sent_at")
        else expression.cast(SCHEMA[name]).alias(name)
        for name, expression in columns.items()
    )
