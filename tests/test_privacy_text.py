"""Redaction and templates of message texts (esms_analytics.privacy.text)."""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_series_equal

from esms_analytics.privacy.text import (
    _NFC_INERT_RANGES,
    PLACEHOLDERS,
    redact,
    redact_expr,
    template,
    template_expr,
)
from esms_analytics.simulator.history import CONTENTS, VIETNAM, History

SEED_PAGE = Path("/work/shared/seed/000_c4ed65135096a315.txt")
API_SHEET = Path("/work/shared/reference/esms_api.md")

FAMILIES = [(sms_type, text) for sms_type, texts in CONTENTS.items() for text in texts]


def _filled(family: str, rng: random.Random) -> str:
    # As the simulator fills a family: a six-digit code where it says {code}.
    return family.replace("{code}", str(rng.randrange(10**5, 10**6)))


def _templates(texts: list[str]) -> list[str]:
    return (
        pl.Series(texts, dtype=pl.String)
        .to_frame("c")
        .select(template_expr(pl.col("c")))["c"]
        .to_list()
    )


def test_every_simulator_family_has_one_template_and_families_have_different_ones() -> None:
    rng = random.Random(20)
    per_family = {
        (sms_type, family): set(_templates([_filled(family, rng) for _ in range(40)]))
        for sms_type, family in FAMILIES
    }
    assert all(len(found) == 1 for found in per_family.values()), per_family
    templates = [next(iter(found)) for found in per_family.values()]
    assert len(set(templates)) == len(FAMILIES)
    # The code the simulator inserts is what became a placeholder, not the family's words.
    assert template(_filled("Ma OTP cua ban la {code}. Ma co hieu luc", rng)) == (
        "Ma OTP cua ban la {code}. Ma co hieu luc"
    )


def test_a_simulated_day_has_as_many_templates_as_its_families_use() -> None:
    history = History(
        seed=7, first_day=date(2026, 11, 2), last_day=date(2026, 11, 2), daily_volume=1500
    )
    start = int(datetime(2026, 11, 2, tzinfo=VIETNAM).timestamp() * 1000)
    end = start + 86_400_000 - 1
    rng = random.Random(3)
    family_templates = {template(_filled(family, rng)): family for _, family in FAMILIES}
    for sms_type in CONTENTS:
        contents = [
            message.content
            for messages, lo, hi in history.visible(sms_type, start, end, end + 10**9)
            for message in messages[lo:hi]
        ]
        found = set(_templates(contents))
        assert found <= set(family_templates), found - set(family_templates)
        # Every family this type sent, recovered from the raw texts by their shape.
        sent = {
            family
            for family in CONTENTS[sms_type]
            if any(
                re.fullmatch(re.escape(family).replace(r"\{code\}", r"\d{6}"), content)
                for content in contents
            )
        }
        assert {family_templates[t] for t in found} == sent


def _seed_contents() -> list[str]:
    contents = re.findall(r'"Content":\s*"([^"]*)"', SEED_PAGE.read_text("utf-8"))
    assert contents, "the seed page's sample rows were not found"
    return contents


def test_the_seed_samples_are_left_as_they_are_and_their_phone_is_redacted() -> None:
    for content in _seed_contents():
        # "Cam on quy khach ...": nothing variable, nothing personal.
        assert redact(content) == content
        assert template(content) == content
    phones = set(re.findall(r'"Phone":\s*"(\d+)"', SEED_PAGE.read_text("utf-8")))
    phones |= set(re.findall(r"`(\+?84\d{9}|0\d{9})`", API_SHEET.read_text("utf-8")))
    assert {"0901888484", "84901888484"} <= phones
    for phone in phones:
        assert redact(f"Goi {phone} de duoc ho tro.") == "Goi {phone} de duoc ho tro."


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Chào Nguyễn Văn An, mã OTP của bạn là 482913", "Chào {name}, mã OTP của bạn là {code}"),
        (
            "Kính gửi Quý khách Trần Thị Bích Ngọc, đơn hàng DH12345678 đã giao",
            "Kính gửi Quý khách {name}, đơn hàng {code} đã giao",
        ),
        (
            "Kinh gui Quy khach Le Van C: ban co 250 diem",
            "Kinh gui Quy khach {name}: ban co {n} diem",
        ),
        (
            "Xin chào Lan! Hẹn gặp lúc 9h30 ngày 02/12/2026",
            "Xin chào {name}! Hẹn gặp lúc {time} ngày {date}",
        ),
        (
            "Chào anh Minh, đơn #A-1234 giao lúc 14:30",
            "Chào anh {name}, đơn #{code} giao lúc {time}",
        ),
        # A title alone is no name.
        ("Chào Quý khách, cảm ơn", "Chào Quý khách, cảm ơn"),
        ("Xem https://pay.example.vn/r/Ab12Cd34?t=9f8e7d6c, nhé", "Xem {url}, nhé"),
        ("Thanh toán 1.500.000đ trước 25/11", "Thanh toán {amount} trước {date}"),
        ("Hiệu lực  3   phút ", "Hiệu lực {n} phút"),
    ],
)
def test_template_replaces_the_variable_parts(content: str, expected: str) -> None:
    assert template(content) == expected


def test_names_in_decomposed_unicode_are_names_too() -> None:
    composed = "Chào Nguyễn Thị Ánh, mã của bạn là 771204"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    assert template(decomposed) == template(composed)
    assert template(composed) == "Chào {name}, mã của bạn là {code}"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Ma OTP: 4829", "Ma OTP: {code}"),
        ("Mã xác thực: A7K9Q2", "Mã xác thực: {code}"),
        ("mã123456 đã gửi", "mã{code} đã gửi"),
        ("goi 0901.888.484 hoac +84 90 188 8484", "goi {phone} hoac {phone}"),
        ("(+84)901888484, 84901888484, 01628765432", "{phone}, {phone}, {phone}"),
        ("Tổng đài 1900 1234", "Tổng đài {phone}"),
        ("goi (028) 3829 1234 hoac (0236) 762-4395", "goi {phone} hoac {phone}"),
        # Codes in groups, or digit by digit.
        ("Your code is 553 210, OTP 553-210", "Your code is {code}, OTP {code}"),
        ("Ma OTP cua ban la 4 8 2 9 1 3.", "Ma OTP cua ban la {code}."),
        ("Mã 55 32 10 hết hạn", "Mã {code} hết hạn"),
        ("OTP: 4829-13, ma 12-3456", "OTP: {code}, ma {code}"),
        # A greeted customer's name is personal data: redacted, not only templated.
        ("Chao anh Nguyen Van A, lich hen luc 9h30", "Chao anh {name}, lich hen luc 9h30"),
        ("Kính gửi Quý khách Trần Thị Bích:", "Kính gửi Quý khách {name}:"),
        # An OTP that begins like a hotline is a code.
        ("Ma OTP cua ban la 190023.", "Ma OTP cua ban la {code}."),
        ("Lien he an.nguyen+sale@mail.example.com.vn.", "Lien he {email}."),
        (
            "1.500.000d, 150,000 VND, 50k, 1,5 triệu, 99K",
            "{amount}, {amount}, {amount}, {amount}, {amount}",
        ),
        ("Ngày sinh 1990-05-21 và 21/05/1990", "Ngày sinh {date} và {date}"),
        # What is not personal stays: short numbers, short mixes, day/month, times.
        (
            "Giảm 30% trong 2-3 ngày, gửi 9x99, hạn 30/11 lúc 9:00",
            "Giảm 30% trong 2-3 ngày, gửi 9x99, hạn 30/11 lúc 9:00",
        ),
    ],
)
def test_redact_replaces_codes_phones_emails_and_amounts(content: str, expected: str) -> None:
    assert redact(content) == expected


_phone = st.builds(
    lambda prefix, body, sep: prefix + sep.join([body[:2], body[2:5], body[5:]]),
    st.sampled_from(["0", "84", "+84", "0", "+84 "]),
    st.sampled_from(["90", "91", "32", "86", "70", "56", "99", "87", "55"]).flatmap(
        lambda head: st.text("0123456789", min_size=7, max_size=7).map(lambda tail: head + tail)
    ),
    st.sampled_from(["", " ", ".", "-"]),
)
_secret = st.one_of(
    _phone,
    st.text("0123456789", min_size=4, max_size=8),
    st.from_regex(r"[0-9]{3}[ \-][0-9]{3}|[0-9]( [0-9]){3,7}", fullmatch=True),
    st.from_regex(r"[A-Z]{2,4}[0-9]{3,6}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9._]{2,10}@[a-z]{3,8}\.(vn|com|com\.vn)", fullmatch=True),
)
_words = st.lists(
    st.sampled_from(
        [
            "Mã",
            "OTP",
            "của",
            "bạn",
            "là",
            "Quý khách",
            "gọi",
            "ngay",
            ":",
            ",",
            ".",
            "Chào",
            "số",
            "(",
            ")",
        ]
    ),
    max_size=4,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_words, _secret), min_size=1, max_size=4), _words)
def test_no_code_phone_or_email_survives_redaction(parts: list[tuple[str, str]], tail: str) -> None:
    content = " ".join(f"{words} {secret}" for words, secret in parts) + " " + tail
    for output in (redact(content), template(content)):
        assert re.search(r"\d{4}", output) is None, (content, output)
        assert "@" not in output, (content, output)
        for _, secret in parts:
            assert secret not in output, (content, output)


def test_frame_and_scalar_forms_agree_and_nulls_stay_null() -> None:
    rng = random.Random(5)
    texts = [_filled(family, rng) for _, family in FAMILIES] + [None, "", "Chào Hà, 0987654321"]
    frame = pl.LazyFrame({"content": texts})
    out = frame.select(
        redact_expr(pl.col("content")).alias("redacted"),
        template_expr(pl.col("content")).alias("template"),
    ).collect()
    assert_series_equal(
        out["redacted"],
        pl.Series("redacted", [None if t is None else redact(t) for t in texts], pl.String),
    )
    assert_series_equal(
        out["template"],
        pl.Series("template", [None if t is None else template(t) for t in texts], pl.String),
    )
    assert out["redacted"][-1] == "Chào {name}, {phone}"  # a greeted name is personal too
    assert out["template"][-1] == "Chào {name}, {phone}"


def test_both_are_idempotent_and_write_only_known_placeholders() -> None:
    rng = random.Random(9)
    texts = [_filled(family, rng) for _, family in FAMILIES] + [
        "Kinh gui Quy khach Tran Thi B, so du 1.234.567 VND, goi 0912345678 hoac an@x.vn"
    ]
    for text in texts:
        assert redact(redact(text)) == redact(text)
        assert template(template(text)) == template(text)
        assert template(redact(text)) == template(text)
        invented = set(re.findall(r"\{[a-z]+\}", template(text))) - set(
            re.findall(r"\{[a-z]+\}", text)
        )
        assert invented <= set(PLACEHOLDERS)


def test_texts_of_the_fast_path_are_in_nfc_and_have_no_digits_but_0_to_9() -> None:
    # The fast path skips NFC and runs [0-9] for \d on texts made only of these
    # characters: each must be left alone by NFC, not combine with what stands before
    # it, and not be a digit of another script.
    seconds = {
        chr(int(parts[1], 16))
        for code in range(0x110000)
        if (decomposition := unicodedata.decomposition(chr(code)))
        and not decomposition.startswith("<")
        and len(parts := decomposition.split()) == 2
    }
    for low, high in _NFC_INERT_RANGES:
        for code in range(low, high + 1):
            character = chr(code)
            assert unicodedata.normalize("NFC", character) == character, hex(code)
            assert unicodedata.combining(character) == 0, hex(code)
            assert not unicodedata.category(character).startswith("M"), hex(code)
            assert character not in seconds, hex(code)
            assert not 0x1100 <= code <= 0x11FF, hex(code)  # Hangul jamo compose by rule
            if unicodedata.category(character) == "Nd":
                assert "0" <= character <= "9", hex(code)


@pytest.mark.parametrize(
    "content",
    [
        "Ma OTP cua ban la ٤٨٢٩١٣",  # Arabic-Indic digits
        "Goi ０９０１８８８４８４ de nhan ma",  # full-width digits
        "Ma\u0300 OTP 482913, goi 0901888484",  # a combining accent: the slow path
    ],
)
def test_codes_in_texts_off_the_fast_path_are_redacted_too(content: str) -> None:
    for output in (redact(content), template(content)):
        assert re.search(r"\d", output) is None, (content, output)
    assert template(content) == template(unicodedata.normalize("NFC", content))
