"""A seeded, deterministic message history that looks like a real eSMS sender's.

Each (SmsType, day) is generated on first use from its own random stream, so
any day can be asked for in any order and always comes out the same. What a
request sees depends on the simulator clock: only messages created by then
exist, and their statuses settle over about three days (queued, then waiting
for the carrier's report, then delivered or failed).

This module knows nothing of the client or the decoder: it has its own
tables, its own segment counter and its own date format, so that a bug in the
toolkit's decoding cannot be mirrored here and go unnoticed.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

VIETNAM = timezone(timedelta(hours=7))

# Share of each SmsType in the daily volume.
TYPE_SHARES: dict[int, float] = {
    2: 0.45,
    1: 0.25,
    25: 0.12,
    23: 0.06,
    24: 0.05,
    8: 0.04,
    26: 0.03,
}
TYPE_INDEX = {code: index for index, code in enumerate(sorted(TYPE_SHARES))}

# carrier: (weight, current prefixes, old 11-digit prefixes, delivery rate)
CARRIERS: dict[str, tuple[float, list[str], list[str], float]] = {
    "viettel": (
        0.45,
        ["086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039"],
        [f"016{d}" for d in "23456789"],
        0.975,
    ),
    "vinaphone": (
        0.24,
        ["088", "091", "094", "081", "082", "083", "084", "085"],
        ["0123", "0124", "0125", "0127", "0129"],
        0.955,
    ),
    "mobifone": (
        0.20,
        ["089", "090", "093", "070", "076", "077", "078", "079"],
        ["0120", "0121", "0122", "0126", "0128"],
        0.945,
    ),
    "vietnamobile": (0.05, ["092", "056", "058", "052"], ["0186", "0188"], 0.86),
    "gmobile": (0.02, ["099", "059"], ["0199"], 0.78),
    "itel": (0.025, ["087"], [], 0.89),
    "reddi": (0.01, ["055"], [], 0.82),
    "landline": (0.005, ["0283", "0243", "0236"], [], 0.30),
}

# Price in VND of one segment (SMS types) or one message (OTT types).
SMS_SEGMENT_PRICES = {
    1: {
        "viettel": 800.0,
        "vinaphone": 800.0,
        "mobifone": 770.0,
        "vietnamobile": 700.0,
        "gmobile": 650.0,
        "itel": 700.0,
        "reddi": 700.0,
        "landline": 800.0,
    },
    2: {
        "viettel": 750.0,
        "vinaphone": 790.0,
        "mobifone": 720.0,
        "vietnamobile": 600.0,
        "gmobile": 580.0,
        "itel": 650.0,
        "reddi": 650.0,
        "landline": 790.0,
    },
    8: {name: 350.0 for name in CARRIERS},
}
OTT_PRICES = {23: 300.0, 24: 440.0, 25: 300.0, 26: 100.0}
OTT_SUCCESS_FACTOR = {23: 0.93, 24: 0.95, 25: 0.90, 26: 0.97}

CAMPAIGNS: dict[int, list[str]] = {
    1: [
        "Khuyến mãi Tết 2026",
        "Black Friday siêu sale",
        "Tri ân khách hàng tháng 11",
        "Flash sale cuối tuần",
        "Ra mắt bộ sưu tập mới",
        "Giảm 50% toàn bộ cửa hàng",
        "Chiến dịch 02/10/2023",
        "Mừng sinh nhật 10 năm",
        "Săn deal 11.11",
    ],
    2: [
        "OTP đăng nhập",
        "Xác nhận đơn hàng",
        "Nhắc lịch hẹn",
        "Thông báo giao hàng",
        "Cảnh báo bảo mật",
        "Nhắc thanh toán hóa đơn",
        "Chăm sóc sau bán hàng",
    ],
    8: ["Thông báo đầu số cố định", "Nhắc nợ cước"],
    23: ["Viber - Ưu đãi thành viên", "Viber - Xác nhận đặt chỗ"],
    24: ["ZNS OTP ưu tiên", "ZNS cảnh báo giao dịch"],
    25: ["ZNS xác nhận đơn hàng", "ZNS đánh giá dịch vụ", "ZNS nhắc lịch hẹn"],
    26: ["Zalo OA - Tin tức tuần", "Zalo OA - Khảo sát khách hàng"],
}
# Campaigns that deliver noticeably worse (bad lists, spam-filtered wording).
WEAK_CAMPAIGNS = {
    "Flash sale cuối tuần": 0.80,
    "Giảm 50% toàn bộ cửa hàng": 0.72,
    "Nhắc thanh toán hóa đơn": 0.90,
    "ZNS đánh giá dịch vụ": 0.85,
}

CONTENTS: dict[int, list[str]] = {
    1: [
        "KHUYEN MAI: Giam 30% toan bo san pham den het 30/11. Mua ngay tai shop.example.vn. "
        "Tu choi QC soan TC gui 9x99",
        "Mừng Black Friday! Giảm đến 50% tất cả mặt hàng, miễn phí giao hàng toàn quốc. "
        "Chi tiết tại shop.example.vn. Từ chối QC soạn TC gửi 9x99",
        "[SALE] Flash sale 12h trua nay: dong gia 99K {Ao, Quan, Giay}. Xem tai "
        "shop.example.vn/sale ~ So luong co han. Tu choi QC soan TC gui 9x99",
        "Tri ân khách hàng thân thiết: tặng voucher 200.000đ cho đơn từ 1 triệu. "
        "Mã: TRIAN2026. Hạn dùng đến 31/12. Cảm ơn quý khách đã đồng hành cùng chúng tôi "
        "suốt thời gian qua. Từ chối QC soạn TC gửi 9x99",
        "Cam on quy khach da su dung dich vu cua chung toi. Chuc quy khach mot ngay tot lanh!",
    ],
    2: [
        "Ma OTP cua ban la {code}. Ma co hieu luc trong 5 phut. Khong chia se ma nay voi bat ky ai.",
        "Mã xác thực của bạn là {code}. Không chia sẻ mã này.",
        "Don hang #{code} da duoc xac nhan va se giao trong 2-3 ngay. Cam on quy khach!",
        "Quý khách có lịch hẹn lúc 9:00 ngày mai tại chi nhánh Quận 1. Vui lòng đến trước 10 phút.",
        "Canh bao: tai khoan cua ban vua dang nhap tu thiet bi moi luc {code}. Neu khong phai "
        "ban, goi 1900 1234 ngay.",
        "Hoa don thang nay cua quy khach la 350.000 VND, han thanh toan 25/11. Thanh toan tai "
        "app hoac quay giao dich. Bo qua tin nhan neu da thanh toan.",
    ],
    8: [
        "Thong bao: cuoc dich vu thang nay la 120.000 VND. Lien he 1900 5555.",
        "Quý khách vui lòng thanh toán cước trước ngày 15.",
    ],
    23: [
        "🎉 Ưu đãi thành viên: tặng 100 điểm khi đặt chỗ hôm nay!",
        "Đặt chỗ #{code} đã được xác nhận. Hẹn gặp quý khách!",
    ],
    24: [
        "Mã OTP của bạn là {code}. Hiệu lực 3 phút.",
        "Giao dịch {code} vừa được thực hiện trên tài khoản của bạn.",
    ],
    25: [
        "Đơn hàng {code} đã được xác nhận ✅. Cảm ơn quý khách!",
        "Quý khách vui lòng đánh giá dịch vụ ⭐ tại đường dẫn sau.",
        "Nhắc lịch hẹn: 14:00 ngày mai tại phòng khám Quận 3.",
    ],
    26: [
        "Tin tức tuần này từ OA: sản phẩm mới, ưu đãi mới 📰",
        "Mời bạn tham gia khảo sát 2 phút để nhận quà.",
    ],
}

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_DOUBLE = set("\f^{}\\[~]|€")


def count_segments(text: str) -> int:
    """Segments the simulator bills for: 160/153 GSM-7 septets, 70/67 UTF-16 units."""
    if all(char in GSM7 or char in GSM7_DOUBLE for char in text):
        units = sum(2 if char in GSM7_DOUBLE else 1 for char in text)
        return 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


@dataclass(slots=True)
class Message:
    """One (submission, receiver) row, with the fate the simulator decided for it."""

    created_ms: int
    seq: int
    sms_id: int
    reference_id: str
    phone: str
    campaign: str | None
    content: str
    price: float
    sms_type: int
    delivered: bool
    rejected: bool
    review_s: float
    queue_s: float
    report_s: float
    as_strings: bool
    legacy_date: bool

    def status_at(self, now_ms: int) -> tuple[int, int, int]:
        """(SendStatus, SendResult, sent moment in ms) as seen at ``now_ms``."""
        age = (now_ms - self.created_ms) / 1000.0
        sent_ms = self.created_ms + int((self.review_s + self.queue_s) * 1000)
        if age < self.review_s:
            return 1, 2, self.created_ms
        if self.rejected:
            return 4, 0, self.created_ms
        if age < self.review_s + self.queue_s:
            return 2, 2, self.created_ms
        if age < self.review_s + self.queue_s + self.report_s:
            return 7, 2, sent_ms
        return 5, (1 if self.delivered else 0), sent_ms


class History:
    """Every message of every (SmsType, day), generated lazily and cached.

    Parameters
    ----------
    seed : int
        The same seed gives the same history.
    first_day, last_day : date
        Days outside this range have no messages.
    daily_volume : int
        Average rows a day over all types (weekends are quieter).
    counts : callable, optional
        ``counts(sms_type, day) -> rows`` overrides the volume exactly.
    string_numbers : float
        Share of rows whose numbers are sent as strings.
    legacy_dates : float
        Share of rows whose SentTime uses the old ``dd/MM/yyyy HH:mm:ss`` form.
    """

    def __init__(
        self,
        *,
        seed: int,
        first_day: date,
        last_day: date,
        daily_volume: int,
        counts: Callable[[int, date], int] | None = None,
        string_numbers: float = 0.05,
        legacy_dates: float = 0.0,
    ):
        self.seed = seed
        self.first_day = first_day
        self.last_day = last_day
        self.daily_volume = daily_volume
        self.counts = counts
        self.string_numbers = string_numbers
        self.legacy_dates = legacy_dates
        self._days: dict[tuple[int, date], tuple[list[int], list[Message]]] = {}
        self._lock = threading.Lock()
        self._arrivals = 0

    @property
    def version(self) -> int:
        """Changes whenever messages are added after generation (arrivals)."""
        return self._arrivals

    # -- reading ------------------------------------------------------------

    def visible(
        self, sms_type: int, start_ms: int, end_ms: int, now_ms: int
    ) -> list[tuple[list[Message], int, int]]:
        """Slices of day lists, newest day first, holding the messages created in range.

        Each slice ``(messages, lo, hi)`` covers ``messages[lo:hi]`` in ascending
        creation order; the caller reads them backwards for newest first.
        """
        end_ms = min(end_ms, now_ms)
        if end_ms < start_ms:
            return []
        first = datetime.fromtimestamp(start_ms / 1000, VIETNAM).date()
        last = datetime.fromtimestamp(end_ms / 1000, VIETNAM).date()
        slices = []
        day = last
        while day >= first:
            created, messages = self._day(sms_type, day)
            with self._lock:
                lo = bisect.bisect_left(created, start_ms)
                hi = bisect.bisect_right(created, end_ms)
            if hi > lo:
                slices.append((messages, lo, hi))
            day -= timedelta(days=1)
        return slices

    def add_arrivals(self, sms_type: int, now_ms: int, count: int) -> None:
        """Create ``count`` customer messages at ``now_ms`` (they arrive mid-paging)."""
        day = datetime.fromtimestamp(now_ms / 1000, VIETNAM).date()
        created, messages = self._day(sms_type, day)
        with self._lock:
            for _ in range(count):
                self._arrivals += 1
                rng = random.Random(f"{self.seed}-arrival-{self._arrivals}")
                message = self._message(
                    rng,
                    sms_type,
                    now_ms,
                    900_000_000 + self._arrivals,
                    self._campaign(rng, sms_type),
                    seq=-self._arrivals,
                )
                index = bisect.bisect_right(created, now_ms)
                created.insert(index, now_ms)
                messages.insert(index, message)

    # -- generation ---------------------------------------------------------

    def _day(self, sms_type: int, day: date) -> tuple[list[int], list[Message]]:
        key = (sms_type, day)
        with self._lock:
            cached = self._days.get(key)
        if cached is not None:
            return cached
        messages = self._generate(sms_type, day)
        created = [message.created_ms for message in messages]
        with self._lock:
            return self._days.setdefault(key, (created, messages))

    def _target(self, rng: random.Random, sms_type: int, day: date) -> int:
        if not self.first_day <= day <= self.last_day:
            return 0
        if self.counts is not None:
            return max(0, int(self.counts(sms_type, day)))
        weekend = 0.6 if day.weekday() >= 5 else 1.0
        mean = self.daily_volume * TYPE_SHARES[sms_type] * weekend
        return max(0, round(mean * rng.uniform(0.75, 1.25)))

    def _generate(self, sms_type: int, day: date) -> list[Message]:
        rng = random.Random(self.seed * 1_000_003 + sms_type * 100_003 + day.toordinal())
        target = self._target(rng, sms_type, day)
        midnight_ms = int(datetime(day.year, day.month, day.day, tzinfo=VIETNAM).timestamp() * 1000)
        sms_id = (day.toordinal() - 730_000) * 100_000_000 + TYPE_INDEX[sms_type] * 10_000_000
        messages: list[Message] = []
        if sms_type == 1 and self.counts is None and target:
            # Advertising arrives in blasts of 30-5,000 phones; some days have none.
            mean_blast = min(1500.0, max(30.0, target))
            blasts = _poisson(rng, target / mean_blast)
            sizes = [
                int(math.exp(rng.uniform(math.log(30), math.log(min(5000, 3 * mean_blast)))))
                for _ in range(blasts)
            ]
        else:
            sizes, total = [], 0
            while total < target:
                if sms_type == 1:
                    size = int(math.exp(rng.uniform(3.4, 8.5)))
                else:
                    # Customer care: one phone per ReferenceId, a few submissions share an SmsId.
                    size = rng.choice((1, 1, 1, 2, 3))
                sizes.append(min(target - total, size))
                total += sizes[-1]
        for size in sizes:
            sms_id += 1
            created_ms = midnight_ms + _second_of_day(rng) * 1000 + rng.randrange(1000)
            campaign = self._campaign(rng, sms_type)
            if sms_type == 1:
                reference = _reference_id(rng)
                phones = _phones(rng, size)
                for phone in phones:
                    messages.append(
                        self._message(
                            rng,
                            sms_type,
                            created_ms,
                            sms_id,
                            campaign,
                            seq=len(messages),
                            reference=reference,
                            phone=phone,
                        )
                    )
            else:
                for offset in range(size):
                    messages.append(
                        self._message(
                            rng, sms_type, created_ms + offset, sms_id, campaign, seq=len(messages)
                        )
                    )
        messages.sort(key=lambda message: (message.created_ms, message.seq))
        return messages

    def _campaign(self, rng: random.Random, sms_type: int) -> str | None:
        # A few senders leave the campaign empty, or the service sends null.
        roll = rng.random()
        if roll < 0.015:
            return None
        if roll < 0.03:
            return ""
        return rng.choice(CAMPAIGNS[sms_type])

    def _message(
        self,
        rng: random.Random,
        sms_type: int,
        created_ms: int,
        sms_id: int,
        campaign: str | None,
        *,
        seq: int,
        reference: str | None = None,
        phone: tuple[str, str] | None = None,
    ) -> Message:
        carrier, number = phone or _phones(rng, 1)[0]
        content = rng.choice(CONTENTS[sms_type]).replace("{code}", str(rng.randrange(10**5, 10**6)))
        rate = CARRIERS[carrier][3] * WEAK_CAMPAIGNS.get(campaign or "", 1.0)
        if sms_type in OTT_PRICES:
            rate = min(rate, 0.99) * OTT_SUCCESS_FACTOR[sms_type]
            price = OTT_PRICES[sms_type]
        else:
            price = SMS_SEGMENT_PRICES[sms_type][carrier] * count_segments(content)
        rejected = rng.random() < (0.01 if sms_type == 1 else 0.002)
        delivered = rng.random() < rate
        # Zalo and Viber bill only delivered messages; SMS carriers bill what was sent.
        unbilled = rejected or (sms_type in OTT_PRICES and not delivered)
        roll = rng.random()
        if roll < 0.85:
            report_s = rng.uniform(2, 120)
        elif roll < 0.97:
            report_s = rng.uniform(120, 6 * 3600)
        else:
            report_s = rng.uniform(6 * 3600, 70 * 3600)
        return Message(
            created_ms=created_ms,
            seq=seq,
            sms_id=sms_id,
            reference_id=reference or _reference_id(rng),
            phone=number,
            campaign=campaign,
            content=content,
            price=0.0 if unbilled else price,
            sms_type=sms_type,
            delivered=delivered and not rejected,
            rejected=rejected,
            review_s=rng.uniform(300, 1800) if sms_type == 1 else 0.0,
            queue_s=rng.uniform(0.5, 20),
            report_s=report_s,
            as_strings=rng.random() < self.string_numbers,
            legacy_date=rng.random() < self.legacy_dates,
        )


def render_row(message: Message, now_ms: int) -> dict[str, Any]:
    """Render the ``SentData`` entry of a message as eSMS would send it at ``now_ms``."""
    status, result, sent_ms = message.status_at(now_ms)
    if message.legacy_date:
        sent = datetime.fromtimestamp(sent_ms / 1000, VIETNAM).strftime("%d/%m/%Y %H:%M:%S")
    else:
        sent = f"/Date({sent_ms}+0700)/"
    row: dict[str, Any] = {
        "Campaign": message.campaign,
        "Content": message.content,
        "Phone": message.phone,
        "ReferenceId": message.reference_id,
        "SellPrice": message.price,
        "SendResult": result,
        "SendStatus": status,
        "SentTime": sent,
        "SmsId": message.sms_id,
        "SmsType": message.sms_type,
    }
    if message.as_strings:
        # The documentation types every field as a string; some rows really are.
        for name in ("SellPrice", "SendResult", "SendStatus", "SmsId", "SmsType"):
            row[name] = f"{row[name]:.4f}" if name == "SellPrice" else str(row[name])
    return row


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method; the means here are small.
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _second_of_day(rng: random.Random) -> int:
    # Most traffic in business hours, some at night (OTPs never sleep).
    if rng.random() < 0.85:
        return int(rng.uniform(7 * 3600, 22 * 3600))
    return rng.randrange(86_400)


def _reference_id(rng: random.Random) -> str:
    value = f"{rng.getrandbits(128):032x}"
    style = rng.random()
    if style < 0.5:
        return value
    dashed = f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return dashed if style < 0.8 else f"{dashed}{rng.randrange(10, 100)}"


def _phones(rng: random.Random, count: int) -> list[tuple[str, str]]:
    names = list(CARRIERS)
    weights = [CARRIERS[name][0] for name in names]
    seen: set[str] = set()
    phones: list[tuple[str, str]] = []
    while len(phones) < count:
        carrier = rng.choices(names, weights)[0]
        _, prefixes, old_prefixes, _ = CARRIERS[carrier]
        if carrier == "landline":
            number = rng.choice(prefixes) + f"{rng.randrange(10**7):07d}"
        elif old_prefixes and rng.random() < 0.05:
            number = rng.choice(old_prefixes) + f"{rng.randrange(10**7):07d}"
        else:
            number = rng.choice(prefixes) + f"{rng.randrange(10**7):07d}"
        if number in seen:
            continue
        seen.add(number)
        style = rng.random()
        if style < 0.12:
            number = "84" + number[1:]
        elif style < 0.15:
            number = "+84" + number[1:]
        phones.append((carrier, number))
    return phones
