"""The decoder: exact values from the seed page, properties of dates, phones and segments."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from esms_analytics import SCHEMA, DecodeError, decode_rows, fetch_days
from esms_analytics.simulator import Simulator

from .conftest import NOW

# The seed page's sample rows, with its JSON typos (a missing comma and quote) fixed.
SEED_ROWS = [
    {
        "Campaign": "Chiến dịch 02/10/2023",
        "Content": "Cam on quy khach da su dung dich vu cua chung toi. "
        "Chuc quy khach mot ngay tot lanh!",
        "Phone": "0901888484",
        "ReferenceId": "35781d6c25524e40a035c26663189549",
        "SellPrice": 345.0,
        "SendResult": 0,
        "SendStatus": 5,
        "SentTime": "/Date(1705484048995+0700)/",
        "SmsId": 29028845,
        "SmsType": 2,
    },
    {
        "Campaign": "Chiến dịch 02/10/2023",
        "Content": "Cam on quy khach da su dung dich vu cua chung toi. "
        "Chuc quy khach mot ngay tot lanh!",
        "Phone": "0901888484",
        "ReferenceId": "0aac72e0-ba9b-4348-8530-d18d105778db18",
        "SellPrice": 790.0000,
        "SendResult": 1,
        "SendStatus": 5,
        "SentTime": "/Date(1705484048995+0700)/",
        "SmsId": 29028845,
        "SmsType": 2,
    },
]

# The reference sheet's prefix table, written out independently of the decoder.
PREFIXES = {
    "viettel": "086 096 097 098 032 033 034 035 036 037 038 039",
    "vinaphone": "088 091 094 081 082 083 084 085",
    "mobifone": "089 090 093 070 076 077 078 079",
    "vietnamobile": "092 056 058 052",
    "gmobile": "099 059",
    "itel": "087",
    "reddi": "055",
}
OLD_TO_NEW = {
    "0162": "032",
    "0163": "033",
    "0164": "034",
    "0165": "035",
    "0166": "036",
    "0167": "037",
    "0168": "038",
    "0169": "039",
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
CARRIER_OF = {prefix: name for name, prefixes in PREFIXES.items() for prefix in prefixes.split()}
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999
VN = timezone(timedelta(hours=7))


def row(**changes: object) -> dict[str, object]:
    return {**SEED_ROWS[0], **changes}


def test_the_seed_rows_decode_to_exactly_the_documented_values() -> None:
    sent = datetime(2024, 1, 17, 16, 34, 8, 995000, tzinfo=VN)
    expected = pl.DataFrame(
        {
            "sms_id": [29028845, 29028845],
            "reference_id": [
                "35781d6c25524e40a035c26663189549",
                "0aac72e0-ba9b-4348-8530-d18d105778db18",
            ],
            "campaign": ["Chiến dịch 02/10/2023"] * 2,
            "content": [SEED_ROWS[0]["Content"]] * 2,
            "phone": ["0901888484"] * 2,
            "phone_e164": ["+84901888484"] * 2,
            "carrier": ["mobifone"] * 2,
            "sell_price": [345.0, 790.0],
            "sms_type": [2, 2],
            "sms_type_label": ["customer_care"] * 2,
            "send_status": [5, 5],
            "send_status_label": ["sent"] * 2,
            "send_result": [0, 1],
            "send_result_label": ["failed", "delivered"],
            "is_final": [True, True],
            "sent_at": [sent, sent],
            "encoding": ["gsm7"] * 2,
            "segments": [1, 1],
            "length": [84, 84],
        },
        schema=SCHEMA,
    )
    assert_frame_equal(decode_rows(SEED_ROWS), expected)
    assert str(decode_rows(SEED_ROWS)["sent_at"][0]) == "2024-01-17 16:34:08.995000+07:00"


def test_strings_and_numbers_are_the_same_values() -> None:
    as_strings = [
        {
            key: (str(value) if key in ("SmsId", "SmsType", "SendResult", "SendStatus") else value)
            for key, value in r.items()
        }
        for r in SEED_ROWS
    ]
    as_strings[1]["SellPrice"] = "790.0000"
    assert_frame_equal(decode_rows(as_strings), decode_rows(SEED_ROWS))


def test_historical_spellings_and_forms_are_accepted() -> None:
    legacy = {
        key: value
        for key, value in SEED_ROWS[1].items()
        if key not in ("ReferenceId", "SendResult")
    }
    legacy |= {
        "RefercenceId": "abc",
        "SentStatus": True,
        "SentTime": "23/11/2023 17:06:37",
        "SendStatus": 3,
    }
    frame = decode_rows([legacy])
    assert frame["reference_id"][0] == "abc"
    assert frame["send_result"][0] == 1
    assert frame["send_status_label"][0] == "sending"
    assert frame["sent_at"][0] == datetime(2023, 11, 23, 17, 6, 37, tzinfo=VN)


def test_null_and_empty_campaigns_stay_as_they_came() -> None:
    frame = decode_rows([row(Campaign=None), row(Campaign="")])
    assert frame["campaign"].to_list() == [None, ""]


@pytest.mark.parametrize(
    ("status", "result", "final"),
    [
        (5, 1, True),
        (5, 0, True),
        (5, 2, False),
        (7, 2, False),
        (4, 0, True),
        (2, 2, False),
        (1, 2, False),
        (0, 2, False),
    ],
)
def test_is_final(status: int, result: int, final: bool) -> None:
    assert decode_rows([row(SendStatus=status, SendResult=result)])["is_final"][0] is final


def test_an_empty_page_is_an_empty_frame_with_the_schema() -> None:
    frame = decode_rows([])
    assert frame.height == 0
    assert frame.schema == SCHEMA


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("SmsId", "29x"),
        ("SellPrice", "free"),
        ("SendStatus", "sent"),
        ("SendStatus", 300),
        ("SentTime", "2024-01-17T16:34:08"),
        ("SentTime", "/Date(99999999999999999)/"),
        ("SentTime", None),
        ("Phone", None),
    ],
)
def test_undecodable_values_name_field_value_and_row(field: str, value: object) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_rows([SEED_ROWS[1], row(**{field: value, "ReferenceId": "ref-42"})])
    message = str(caught.value)
    assert field in message
    assert "ref-42" in message
    if value is not None:
        assert repr(str(value)) in message


def test_unknown_codes_are_kept_labelled_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="esms_analytics")
    rows = [row(SendStatus=42), row(SendStatus=42, ReferenceId="x"), row(SmsType=31)]
    first, second = decode_rows(rows), decode_rows(rows)
    assert first["send_status"].to_list() == [42, 42, 5]
    assert first["send_status_label"].to_list() == ["unknown", "unknown", "sent"]
    assert first["sms_type_label"][2] == "unknown"
    assert_frame_equal(first, second)
    warnings = [r.getMessage() for r in caplog.records if "unknown" in r.getMessage()]
    assert len([w for w in warnings if "send_status code 42" in w]) == 1
    assert len([w for w in warnings if "sms_type code 31" in w]) == 1


@given(
    st.lists(
        st.tuples(
            st.integers(MIN_MS, MAX_MS),
            st.sampled_from(["+0700", "-0500", "+0000", ""]),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_wcf_dates_are_utc_milliseconds_whatever_the_offset(
    values: list[tuple[int, str, bool]],
) -> None:
    rows = [
        row(SentTime=(r"\/Date({}{})\/" if escaped else "/Date({}{})/").format(ms, offset))
        for ms, offset, escaped in values
    ]
    decoded = decode_rows(rows)["sent_at"]
    assert decoded.dt.epoch("ms").to_list() == [ms for ms, _, _ in values]
    assert decoded.dtype == pl.Datetime("us", "Asia/Ho_Chi_Minh")


@given(st.integers(-(10**18), MIN_MS - 1) | st.integers(MAX_MS + 1, 10**18))
def test_wcf_dates_outside_the_dotnet_range_are_refused(ms: int) -> None:
    with pytest.raises(DecodeError, match="SentTime"):
        decode_rows([row(SentTime=f"/Date({ms}+0700)/")])


@given(
    prefix=st.sampled_from(sorted(CARRIER_OF) + sorted(OLD_TO_NEW)),
    subscriber=st.integers(0, 10**7 - 1),
    style=st.sampled_from(["0", "84", "+84", "+84 ", "0 spaced"]),
)
def test_every_prefix_in_every_format_normalises(prefix: str, subscriber: int, style: str) -> None:
    national = f"{prefix}{subscriber:07d}"
    new_national = OLD_TO_NEW.get(prefix, prefix) + f"{subscriber:07d}"
    written = {
        "0": national,
        "84": "84" + national[1:],
        "+84": "+84" + national[1:],
        "+84 ": "+84 " + national[1:4] + " " + national[4:],
        "0 spaced": f"{national[:4]}.{national[4:7]}.{national[7:]}",
    }[style]
    frame = decode_rows([row(Phone=written)])
    assert frame["phone"][0] == written
    assert frame["phone_e164"][0] == "+84" + new_national[1:]
    assert frame["carrier"][0] == CARRIER_OF[new_national[:3]]


@pytest.mark.parametrize(
    "phone", ["02838123456", "0281234567", "0101234567", "12345", "abc", "", "+1 415 555 0100"]
)
def test_numbers_that_are_not_vietnamese_mobiles_have_no_e164(phone: str) -> None:
    frame = decode_rows([row(Phone=phone)])
    assert frame["phone_e164"][0] is None
    assert frame["carrier"][0] == "unknown"
    assert frame["phone"][0] == phone


@pytest.mark.parametrize(
    ("content", "encoding", "segments"),
    [
        ("a" * 160, "gsm7", 1),
        ("a" * 161, "gsm7", 2),
        ("a" * 306, "gsm7", 2),
        ("a" * 307, "gsm7", 3),
        ("ă" * 70, "ucs2", 1),
        ("ă" * 71, "ucs2", 2),
        ("ă" * 134, "ucs2", 2),
        ("ă" * 135, "ucs2", 3),
        ("€" * 80, "gsm7", 1),
        ("€" * 81, "gsm7", 2),
        ("a" * 159 + "{", "gsm7", 2),
        ("😀" * 35, "ucs2", 1),
        ("😀" * 36, "ucs2", 2),
        ("a" * 69 + "😀", "ucs2", 2),
        ("", "gsm7", 1),
    ],
)
def test_segment_counts_at_the_boundaries(content: str, encoding: str, segments: int) -> None:
    frame = decode_rows([row(Content=content)])
    assert frame.select("encoding", "segments", "length").row(0) == (
        encoding,
        segments,
        len(content),
    )


@given(st.text(alphabet="abcXYZ 019.,ăơưđ", min_size=0, max_size=700))
def test_segments_follow_the_published_steps(content: str) -> None:
    unicode = any(char in "ăơưđ" for char in content)
    single, multi = (70, 67) if unicode else (160, 153)
    expected = 1 if len(content) <= single else math.ceil(len(content) / multi)
    frame = decode_rows([row(Content=content)])
    assert frame["segments"][0] == expected
    assert frame["encoding"][0] == ("ucs2" if unicode else "gsm7")


def test_frames_from_the_simulator_have_exactly_the_schema() -> None:
    with Simulator(now=NOW, daily_volume=200, legacy_dates=0.2) as sim, sim.client() as client:
        for sms_type in (1, 2, 8, 23, 24, 25, 26):
            frame = fetch_days(
                client, NOW.date() - timedelta(days=2), NOW.date(), sms_types=[sms_type]
            )
            assert frame.schema == SCHEMA
            assert frame["sms_type"].unique().to_list() in ([sms_type], [])
    assert frame.height > 0


@pytest.mark.parametrize(
    "price", ["NaN", "nan", "Infinity", "-inf", "1e999", math.nan, math.inf, -math.inf]
)
def test_a_price_that_is_not_finite_is_undecodable(price: object) -> None:
    with pytest.raises(DecodeError, match="SellPrice") as caught:
        decode_rows([SEED_ROWS[1], row(SellPrice=price, ReferenceId="ref-42")])
    assert caught.value.field == "SellPrice"
    assert caught.value.reference_id == "ref-42"
    assert caught.value.rows == 1
    assert "finite" in str(caught.value)


def test_negative_prices_are_kept() -> None:
    frame = decode_rows([row(SellPrice="-345.0"), row(SellPrice=-1)])
    assert frame["sell_price"].to_list() == [-345.0, -1.0]
