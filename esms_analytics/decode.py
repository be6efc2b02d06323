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

import logging
import threading
from collections.abc import Mapping, Sequence
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
    """
    if raw.height == 0:
        return empty_frame()
    numeric = ("SmsId", "SellPrice", "SmsType", "SendStatus", "SendResult", "SentStatus")
    legacy_result = (
        pl.col("SentStatus")
        .str.to_lowercase()
        .replace_strict({"true": "1", "false": "0", "1": "1", "0": "0"}, default=None)
    )
    # Staged columns: each intermediate is computed once, then reused.
    staged = (
        raw.lazy()
        .with_columns(
            # Surrounding blanks and empty strings of numeric fields are as absent as nulls.
            pl.col(*numeric, "SentTime").str.strip_chars().replace("", None),
            pl.coalesce("ReferenceId", "RefercenceId").fill_null("").alias("ReferenceId"),
            _digits=_phone_digits(pl.col("Phone")),
            _gsm7=pl.col("Content").str.contains(_GSM7_TEXT),
            length=pl.col("Content").str.len_chars(),
        )
        .with_columns(
            SendResult=pl.coalesce("SendResult", legacy_result),
            _national=_national(pl.col("_digits")),
        )
        .with_columns(
            sms_id=_integer("SmsId", pl.Int64),
            sell_price=pl.col("SellPrice").cast(pl.Float64, strict=False),
            sms_type=_integer("SmsType", pl.Int16),
            send_status=_integer("SendStatus", pl.Int8),
            send_result=_integer("SendResult", pl.Int8),
            epoch_ms=pl.col("SentTime").str.extract(_WCF_DATE, 1).cast(pl.Int64, strict=False),
            local_time=pl.col("SentTime").str.strptime(
                pl.Datetime("us"), _LEGACY_DATE_FORMAT, strict=False
            )
            if _has_legacy_dates(raw)
            else pl.lit(None, pl.Datetime("us")),
            _mobile=_valid_mobile(pl.col("_national")),
            _units=pl.col("length")
            + pl.when(pl.col("_gsm7"))
            .then(pl.col("Content").str.count_matches(_GSM7_EXT_CHAR))
            .otherwise(pl.col("Content").str.count_matches(_ASTRAL_CHAR)),
        )
        .collect()
    )
    _require(staged, ("SmsId", "Phone", "SmsType", "SendStatus", "SentTime", "SendResult"))
    for field, column in (
        ("SmsId", "sms_id"),
        ("SellPrice", "sell_price"),
        ("SmsType", "sms_type"),
        ("SendStatus", "send_status"),
        ("SendResult", "send_result"),
    ):
        failed = staged[field].is_not_null() & staged[column].is_null()
        if failed.any():
            _raise_bad(staged, failed, field, f"expected a number fitting {SCHEMA[column]}")
    # NaN and infinity parse as floats but are no price: a cost report would turn to NaN.
    # Negative prices stay (refunds may exist).
    not_finite = ~staged["sell_price"].is_finite().fill_null(True)
    if not_finite.any():
        _raise_bad(staged, not_finite, "SellPrice", "expected a finite number, not NaN or infinity")
    in_range = pl.col("epoch_ms").is_between(_MIN_EPOCH_MS, _MAX_EPOCH_MS)
    bad_time = staged.select(
        ~(in_range.fill_null(False) | pl.col("local_time").is_not_null())
    ).to_series()
    if bad_time.any():
        _raise_bad(
            staged,
            bad_time,
            "SentTime",
            "expected /Date(milliseconds+0700)/ or dd/MM/yyyy HH:mm:ss",
        )
    for column, table in (
        ("sms_type", SMS_TYPES),
        ("send_status", SEND_STATUSES),
        ("send_result", SEND_RESULTS),
    ):
        _warn_unknown(staged[column], column, table)

    gsm7, units = pl.col("_gsm7"), pl.col("_units")
    single = pl.when(gsm7).then(GSM7_SINGLE).otherwise(UCS2_SINGLE)
    multi = pl.when(gsm7).then(GSM7_MULTI).otherwise(UCS2_MULTI)
    national = pl.when(pl.col("_mobile")).then(pl.col("_national"))
    return staged.select(
        "sms_id",
        reference_id=pl.col("ReferenceId"),
        campaign=pl.col("Campaign"),
        content=pl.col("Content"),
        phone=pl.col("Phone"),
        phone_e164=pl.lit("+84") + national.str.slice(1),
        carrier=national.str.slice(0, 3)
        .replace_strict(MOBILE_PREFIXES, default=UNKNOWN, return_dtype=pl.String)
        .fill_null(UNKNOWN)
        .cast(CARRIER_DTYPE),
        sell_price="sell_price",
        sms_type="sms_type",
        sms_type_label=_label("sms_type", SMS_TYPES, SMS_TYPE_LABEL_DTYPE),
        send_status="send_status",
        send_status_label=_label("send_status", SEND_STATUSES, SEND_STATUS_LABEL_DTYPE),
        send_result="send_result",
        send_result_label=_label("send_result", SEND_RESULTS, SEND_RESULT_LABEL_DTYPE),
        is_final=is_final_expr(),
        sent_at=pl.when(pl.col("epoch_ms").is_not_null())
        .then(
            # The number is UTC milliseconds; the +0700 only names the server's zone.
            pl.from_epoch("epoch_ms", time_unit="ms")
            .dt.cast_time_unit("us")
            .dt.replace_time_zone("UTC")
            .dt.convert_time_zone(TIME_ZONE)
        )
        .otherwise(pl.col("local_time").dt.replace_time_zone(TIME_ZONE)),
        encoding=pl.when(gsm7).then(pl.lit("gsm7")).otherwise(pl.lit("ucs2")),
        segments=pl.when(units <= single).then(1).otherwise((units + multi - 1) // multi),
        length="length",
    ).cast(dict(SCHEMA))  # type: ignore[arg-type]


def _has_legacy_dates(raw: pl.DataFrame) -> bool:
    # Nearly every page has only /Date()/ values; parsing the old form is then skipped.
    return bool(raw.select((~pl.col("SentTime").str.contains(r"^\s*\\?/Date\(")).any()).item())


def is_final_expr() -> pl.Expr:
    """Flag the rows that will not change any more: a final result, or rejected."""
    status, result = pl.col("send_status"), pl.col("send_result")
    return ((status == STATUS_SENT) & result.is_in([0, 1])) | (status == STATUS_REJECTED)


def _phone_digits(phone: pl.Expr) -> pl.Expr:
    return phone.str.replace_all(r"[\s.\-()]", "").str.strip_prefix("+")


def _national(digits: pl.Expr) -> pl.Expr:
    # 84 + 9 or 10 digits, or 9 digits without the trunk 0, become 0 + digits; then the
    # 11-digit numbers of before 2018 take their new 3-digit prefix. Plain string tests
    # instead of regexes: _valid_mobile checks the digits of the result anyway.
    length = digits.str.len_chars()
    national = (
        pl.when(digits.str.starts_with("84") & length.is_between(11, 12))
        .then(pl.lit("0") + digits.str.slice(2))
        .when((length == 9) & ~digits.str.starts_with("0"))
        .then(pl.lit("0") + digits)
        .otherwise(digits)
    )
    return (
        pl.when(national.str.len_chars() == 11)
        .then(
            national.str.slice(0, 4).replace_strict(OLD_PREFIXES, default=None)
            + national.str.slice(4)
        )
        .otherwise(national)
    )


def _valid_mobile(national: pl.Expr) -> pl.Expr:
    return national.str.contains(r"^0\d{9}$") & national.str.slice(0, 3).is_in(
        list(MOBILE_PREFIXES)
    )


def _label(column: str, table: Mapping[int, str], dtype: pl.Enum) -> pl.Expr:
    return pl.col(column).replace_strict(table, default=UNKNOWN, return_dtype=dtype)


def _integer(column: str, dtype: type[pl.DataType]) -> pl.Expr:
    # 5, "5" and 5.0 (which arrives as "5.0") are the same integer.
    return pl.col(column).str.replace(r"\.0*$", "").cast(dtype, strict=False)


def _require(frame: pl.DataFrame, fields: Sequence[str]) -> None:
    for field in fields:
        missing = frame[field].is_null()
        if missing.any():
            _raise_bad(frame, missing, field, "the field is required but missing or null")


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
