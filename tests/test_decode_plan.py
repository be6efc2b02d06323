"""How a page is decoded: one query for a page of today's form, the same answer either way.

The decoder takes a short path for pages as today's service sends them (one
Polars query, failures read from null counts) and a thorough one for any other
page (checks one by one). These tests hold the short path to one query and to
exactly the thorough path's answer, error messages included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.lazyframe import engine
from polars.testing import assert_frame_equal

from esms_analytics import DecodeError, decode_rows
from esms_analytics.decode import _LABEL_WITNESSES as LABEL_WITNESSES
from esms_analytics.decode import GSM7_BASIC, GSM7_EXTENSION, decode_raw
from esms_analytics.decode import _decode_thoroughly as decode_thoroughly
from esms_analytics.wire import RAW_SCHEMA, parse_envelope

from .test_decode import SEED_ROWS

GOOD_TIME = "/Date(1705484048995+0700)/"


@contextmanager
def polars_queries(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every query Polars runs in the block, eager operations included.

    Both ``LazyFrame.collect`` and the eager DataFrame/Series methods end in
    ``collect`` of Polars' local engines: counting there counts queries.
    """
    queries: list[str] = []
    original = engine._LocalEngine.collect

    def counting(self: Any, lf: pl.LazyFrame, **kwargs: Any) -> Any:
        queries.append(type(self).__name__)
        return original(self, lf, **kwargs)

    monkeypatch.setattr(engine._LocalEngine, "collect", counting)
    yield queries


def page(rows: int) -> pl.DataFrame:
    """A page of rows as today's service sends them, parsed as the client parses it."""
    body = {"CodeResult": "100", "CountTotal": rows, "SentData": SEED_ROWS * (rows // 2)}
    envelope = parse_envelope(json.dumps(body).encode())
    assert not isinstance(envelope, str)
    return envelope.raw


@pytest.mark.parametrize("rows", [2, 500])
def test_a_page_of_todays_form_is_decoded_by_one_query(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = page(rows)
    with polars_queries(monkeypatch) as queries:
        decoded = decode_raw(raw)
    assert decoded.height == rows
    assert len(queries) == 1, queries


def test_a_page_with_an_undecodable_value_still_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = pl.from_dicts([*SEED_ROWS, {**SEED_ROWS[0], "SmsType": "2x"}], schema=RAW_SCHEMA)
    with polars_queries(monkeypatch) as queries, pytest.raises(DecodeError, match="'2x'"):
        decode_raw(raw)
    assert len(queries) > 1  # the short path, then the checks that name the row


# Values of each field in the forms the service has used, blanks and bad ones included.
NUMBERS = st.sampled_from(["5", 5, 5.0, "5.00", " 5 ", "", "  ", None, "5x", "5.5", "-1"])
CODES = st.sampled_from([1, 2, "2", "2.0", 0, 4, 5, 7, 42, 300, "", None, "sent"])
PRICES = st.sampled_from([345.0, "790.0000", " 345 ", "", None, "free", 0, "NaN", "-inf", "1e999"])
TIMES = st.sampled_from(
    [
        GOOD_TIME,
        r"\/Date(1705484048995)\/",
        f"  {GOOD_TIME} ",
        "/Date(-62135596800001+0700)/",
        "/Date(99999999999999999)/",
        "17/01/2024 16:34:08",
        "2024-01-17T16:34:08",
        "",
        None,
    ]
)
PHONES = st.sampled_from(
    ["0901888484", "+84 90 188 8484", "01628888484", "841628888484", "901888484", "12345", None]
)
CONTENTS = st.text(alphabet=GSM7_BASIC + GSM7_EXTENSION + "ếđ😀", max_size=200)
FIELD_VALUES = {
    "SmsId": NUMBERS,
    "ReferenceId": st.sampled_from(["ref-1", "", None]),
    "Campaign": st.sampled_from(["Chiến dịch", "", None]),
    "Content": CONTENTS,
    "Phone": PHONES,
    "SellPrice": PRICES,
    "SmsType": CODES,
    "SendStatus": CODES,
    "SendResult": CODES,
    "SentTime": TIMES,
    "RefercenceId": st.sampled_from(["ref-old", None]),
    "SentStatus": st.sampled_from([True, False, "true", " FALSE ", "1", "", None]),
}
#: A good row with up to two fields changed: rows that fail on one field are common.
ROWS = st.lists(
    st.one_of(*(st.tuples(st.just(field), values) for field, values in FIELD_VALUES.items())),
    max_size=2,
).map(lambda changes: {**SEED_ROWS[0], **dict(changes)})


def outcome(decode: Callable[[pl.DataFrame], pl.DataFrame], raw: pl.DataFrame) -> object:
    try:
        return decode(raw)
    except DecodeError as exc:
        return str(exc)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROWS, min_size=1, max_size=4))
def test_the_short_path_answers_exactly_as_the_checks_one_by_one(
    rows: list[dict[str, object]],
) -> None:
    raw = pl.from_dicts(rows, schema=RAW_SCHEMA, strict=False)
    short = outcome(decode_raw, raw)
    thorough = outcome(lambda frame: decode_thoroughly(frame).drop(LABEL_WITNESSES), raw)
    if isinstance(short, pl.DataFrame) and isinstance(thorough, pl.DataFrame):
        assert_frame_equal(short, thorough)
    else:
        assert short == thorough


def test_decode_rows_and_decode_raw_agree_on_the_seed_rows() -> None:
    assert_frame_equal(
        decode_rows(SEED_ROWS), decode_raw(pl.from_dicts(SEED_ROWS, schema=RAW_SCHEMA))
    )


def test_a_batch_of_pages_is_decoded_as_one_chunk() -> None:
    # Each parsed page is a chunk of its own; decoded chunk by chunk, every expression pays
    # its fixed cost once per page, and so does every step after the decode.
    batch = pl.concat([page(4) for _ in range(5)], rechunk=False)
    assert batch.n_chunks() == 5
    decoded = decode_raw(batch)
    assert decoded.height == 20
    assert decoded.n_chunks() == 1
    assert_frame_equal(decoded, decode_raw(batch.rechunk()))
