"""The client and sync against a hostile server: keys stay home, bad answers store nothing."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from esms_analytics import SCHEMA, EsmsClient, RetryPolicy, Window, read_lake
from esms_analytics.cli import main
from esms_analytics.client import DEFAULT_DEADLINE, MAX_BODY_BYTES, MAX_PAGES_PER_WINDOW
from esms_analytics.codes import VN_TZ
from esms_analytics.errors import AnswerError, ConfigError, DecodeError, EsmsError, TransportError
from esms_analytics.sync import SHRINK_LIMIT, sync
from esms_analytics.windows import EDGE_TOLERANCE, fetch_window

from .hostile import (
    API_KEY,
    SECRET_KEY,
    Answer,
    HostileServer,
    endless,
    envelope,
    no_data,
    row,
)

DAY = date(2026, 11, 17)
NOON = datetime.combine(DAY, time(12), tzinfo=VN_TZ)
WINDOW = Window.for_day(DAY)
T = TypeVar("T")
WINDOW_COLUMNS = tuple(SCHEMA)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text
        assert SECRET_KEY not in text


# -- point 1: redirects ------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_the_keys_stay_home(hostile: HostileServer, status: int) -> None:
    with HostileServer() as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/MainService.svc/json/GetSmsSentData_V2"
        hostile.respond = lambda body: Answer(status, headers={"Location": target})
        with hostile.client() as client, pytest.raises(TransportError) as caught:
            client.get_page(WINDOW, 2)
        assert elsewhere.requests == []
        assert not elsewhere.received_keys
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert target in message
    assert len(hostile.requests) == 1  # not retried either


# -- point 2: the base URL, decided with the HTTP stack's own parser ------------------


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("http://example.com\\@127.0.0.1:{port}/", False),
        ("http://127.0.0.1:{port}\\@example.com/", False),
        ("http://user@127.0.0.1:{port}/", False),
        ("http://user:pass@127.0.0.1:{port}/", False),
        ("http://127.0.0.1:{port}@example.com/", False),
        ("http://127.0.0.1.nip.io/", False),
        ("http://localhost.example.com/", False),
        ("http://127.1/", False),
        ("http://0x7f000001/", False),
        ("http://2130706433/", False),
        ("http://%31%32%37.0.0.1/", False),
        ("http://127.0.0.1 /x", False),
        (" http://127.0.0.1:{port}/", False),
        ("http://127.0.0.1:{port}/x y", False),
        ("http://127.0.0.1\t/", False),
        ("http://example.com#@127.0.0.1/", False),
        ("http://127.0.0.1:{port}/x?to=example.com", False),
        ("HTTP://example.com/", False),
        ("http://rest.esms.vn/MainService.svc/json", False),
        ("ftp://127.0.0.1/", False),
        ("127.0.0.1:{port}", False),
        ("http:///x", False),
        ("http://127.0.0.1:{port}/", True),
        ("http://127.0.0.2:{port}/", True),
        ("http://[::1]:{port}/", True),
        ("http://localhost/", True),
        ("http://LOCALHOST:{port}/x", True),
        ("HTTP://127.0.0.1:{port}/", True),
        ("https://example.com/MainService.svc/json", True),
        ("HTTPS://rest.esms.vn/MainService.svc/json/", True),
    ],
)
def test_base_url_spellings(url: str, accepted: bool) -> None:
    spelled = url.format(port=8080)
    if accepted:
        assert EsmsClient("k", "s", base_url=spelled).base_url == spelled.rstrip("/")
    else:
        with pytest.raises(ConfigError):
            EsmsClient("k", "s", base_url=spelled)


@pytest.mark.parametrize("url", ["http://user@10.0.0.5/x", "http://10.0.0.5\\@127.0.0.1/x"])
def test_userinfo_and_backslashes_are_refused_even_with_insecure_http(url: str) -> None:
    with pytest.raises(ConfigError, match=r"user|backslash"):
        EsmsClient("k", "s", base_url=url, allow_insecure_http=True)


def test_an_accepted_loopback_url_reaches_the_loopback_server(hostile: HostileServer) -> None:
    url = hostile.base_url.replace("127.0.0.1", "localhost")
    with hostile.client(base_url=url) as client:
        assert client.get_page(WINDOW, 2).count_total == 0
    assert len(hostile.requests) == 1


# -- point 3: every quoted server value is redacted ------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        envelope([row(NOON)], count_total=f"1 {API_KEY}"),
        envelope([row(NOON)], count_total={"echo": [API_KEY, SECRET_KEY]}),
        envelope(code="777", error_message=f"you sent {API_KEY} and {SECRET_KEY}"),
        envelope(code="99", error_message=f"busy {SECRET_KEY}"),
        envelope(code=f"12{API_KEY}"),
    ],
)
def test_keys_echoed_in_the_envelope_are_redacted(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture, answer: Answer
) -> None:
    caplog.set_level(logging.DEBUG)
    hostile.respond = lambda body: answer
    with hostile.client() as client, pytest.raises(EsmsError) as caught:
        fetch_window(client, 2, WINDOW)
    assert_no_secret(
        str(caught.value), repr(caught.value), *(r.getMessage() for r in caplog.records)
    )
    assert_no_secret(*(str(value) for value in vars(caught.value).values()))


@pytest.mark.parametrize(
    "field", ["SmsId", "SellPrice", "SmsType", "SendStatus", "SentTime", "ReferenceId"]
)
def test_keys_echoed_in_a_decoded_field_are_redacted(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture, field: str
) -> None:
    echo = {field: f"{API_KEY}/{SECRET_KEY}"}
    if field == "ReferenceId":  # a free-text field: the error quoting it is another field's
        echo["SmsId"] = "not a number"
    hostile.respond = lambda body: envelope([row(NOON, **echo)])
    with hostile.client() as client, pytest.raises(DecodeError) as caught:
        fetch_window(client, 2, WINDOW)
    assert_no_secret(str(caught.value), repr(caught.value), str(caught.value.value))
    assert_no_secret(caught.value.reference_id, *(r.getMessage() for r in caplog.records))
    assert caught.value.__cause__ is None  # the unredacted original is not chained


def test_keys_with_characters_json_escapes_are_redacted_too(hostile: HostileServer) -> None:
    secret = 'SECRET"with\\odd/ké'
    # An object where a value belongs is kept as its JSON text, which escapes the key.
    hostile.respond = lambda body: envelope([row(NOON, SmsId={"echo": secret})])
    with (
        EsmsClient(API_KEY, secret, base_url=hostile.base_url, sleep=lambda s: None) as client,
        pytest.raises(DecodeError) as caught,
    ):
        fetch_window(client, 2, WINDOW)
    assert "echo" in str(caught.value)
    # However many times the value was escaped on its way into the message, no trace.
    assert "odd/ké" not in str(caught.value)
    assert "***" in str(caught.value)


# -- point 10: the server cannot exhaust the machine -----------------------------------


def test_a_lying_count_total_fails_the_window_at_the_first_page(hostile: HostileServer) -> None:
    hostile.respond = lambda body: envelope([row(NOON)], count_total=10**9)
    with (
        hostile.client() as client,
        ThreadPoolExecutor(4) as pool,
        pytest.raises(AnswerError, match=r"CountTotal 1,000,000,000") as caught,
    ):
        fetch_window(client, 2, WINDOW, pages=pool)
    assert f"{MAX_PAGES_PER_WINDOW:,}" in str(caught.value)
    assert hostile.pages() == [1]


class CountingPool(ThreadPoolExecutor):
    """A thread pool that remembers the most calls it ever held submitted but unfinished."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.outstanding = 0
        self.most_outstanding = 0
        self._count = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._count:
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future[Any]) -> None:
        with self._count:
            self.outstanding -= 1


def test_pages_are_scheduled_lazily(hostile: HostileServer) -> None:
    pages = 3_000
    hostile.respond = lambda body: envelope([row(NOON, int(body["Page"]))], count_total=pages)
    with hostile.client() as client, CountingPool(2) as pool:
        walk = client.iter_pages(WINDOW, 2, page_size=1, pool=pool, ahead=2)
        taken = [page.number for page, _ in zip(walk, range(20), strict=False)]
        walk.close()
    assert taken == list(range(1, 21))
    assert pool.most_outstanding <= 2
    assert len(hostile.requests) <= 20 + 2


def test_a_huge_body_is_refused_while_streaming(hostile: HostileServer) -> None:
    # Twice the cap, then the server stops: a client reading it whole would survive, slowly.
    chunk = b" " * 2**20
    hostile.respond = lambda body: Answer(
        chunks=itertools.repeat(chunk, 2 * MAX_BODY_BYTES // len(chunk)), length=None
    )
    with hostile.client() as client, pytest.raises(TransportError, match="larger than") as caught:
        client.get_page(WINDOW, 2)
    assert f"{MAX_BODY_BYTES:,}" in str(caught.value)
    assert len(hostile.requests) == 1  # a body too large is not worth another attempt


def test_a_declared_huge_body_is_refused_before_reading(hostile: HostileServer) -> None:
    hostile.respond = lambda body: Answer(body=b"{}", length=600 * 2**20)
    with hostile.client() as client, pytest.raises(TransportError, match="larger than"):
        client.get_page(WINDOW, 2)


@pytest.mark.parametrize("length", [None, 10**6])
def test_a_trickling_body_meets_the_deadline(hostile: HostileServer, length: int | None) -> None:
    hostile.respond = lambda body: Answer(chunks=endless(b" "), pause=0.01, length=length)
    with (
        hostile.client(deadline=0.5, timeout=5.0) as client,
        pytest.raises(TransportError, match=r"deadline of 0\.5s"),
    ):
        client.get_page(WINDOW, 2)
    assert len(hostile.requests) == 2  # a deadline is retried like a timeout


def test_the_longest_real_page_fits_well_under_the_cap(hostile: HostileServer) -> None:
    # 2,000 Vietnamese characters, each escaped as \\uXXXX: longer than any real message.
    content = "Tiếng Việt có dấu " * 112
    rows = [row(NOON, number, Content=content) for number in range(500)]
    answer = envelope(rows)
    hostile.respond = lambda body: answer
    with hostile.client() as client:
        page = client.get_page(WINDOW, 2)
    assert page.raw.height == 500
    assert 4 * len(answer.body) < MAX_BODY_BYTES


def test_a_retry_after_past_the_cap_is_reported(
    hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    waits: list[float] = []
    hostile.queue(Answer(429, headers={"Retry-After": "900"}))
    hostile.respond = lambda body: envelope([row(NOON)])
    policy = RetryPolicy(max_attempts=2, retry_after_max=300)
    with hostile.client(retry=policy, sleep=waits.append) as client:
        assert client.get_page(WINDOW, 2).count_total == 1
    assert waits == [300.0]
    assert any(
        "Retry-After 900s" in record.getMessage() and "300" in record.getMessage()
        for record in caplog.records
    )


# -- point 5: rows are checked against the window asked for ----------------------------


def day_rows(day: date, count: int, *, sms_type: int = 2, first: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct rows sent through ``day``, numbered from ``first``."""
    start = datetime.combine(day, time(3), tzinfo=VN_TZ)
    return [
        row(start + timedelta(minutes=7 * n), first + n, sms_type=sms_type) for n in range(count)
    ]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (day_rows(DAY - timedelta(days=400), 3), "outside"),
        (day_rows(DAY, 2) + day_rows(DAY + timedelta(days=1), 1, first=9), "outside"),
        ([row(WINDOW.start - EDGE_TOLERANCE - timedelta(seconds=1))], "outside"),
        ([row(WINDOW.end + EDGE_TOLERANCE + timedelta(seconds=1))], "outside"),
        (day_rows(DAY, 3, sms_type=1), "SmsType 1"),
    ],
)
def test_rows_that_do_not_belong_fail_the_window(
    hostile: HostileServer, rows: list[dict[str, Any]], problem: str
) -> None:
    hostile.respond = lambda body: envelope(rows)
    with hostile.client() as client, pytest.raises(AnswerError, match=problem) as caught:
        fetch_window(client, 2, WINDOW)
    assert str(WINDOW) in str(caught.value)
    assert caught.value.sms_type == 2


def test_rows_sent_within_the_tolerance_at_the_edges_are_kept(hostile: HostileServer) -> None:
    edges = [
        row(WINDOW.start - EDGE_TOLERANCE, 1),
        row(WINDOW.start, 2),
        row(WINDOW.end, 3),
        row(WINDOW.end + EDGE_TOLERANCE, 4),
    ]
    hostile.respond = lambda body: envelope(edges)
    with hostile.client() as client:
        result = fetch_window(client, 2, WINDOW)
    assert result.complete
    assert result.frame.height == 4


def from_day(body: dict[str, Any]) -> date:
    return date.fromisoformat(str(body["From"])[:10])


def run_cli(hostile: HostileServer, lake: Path, *options: str) -> int:
    return main(
        [
            "sync",
            "--lake",
            str(lake),
            "--base-url",
            hostile.base_url,
            "--max-attempts",
            "1",
            "--sms-type",
            "2",
            "--quiet",
            *options,
        ]
    )


def test_a_window_of_bad_rows_fails_alone(
    hostile: HostileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESMS_API_KEY", API_KEY)
    monkeypatch.setenv("ESMS_SECRET_KEY", SECRET_KEY)
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    answers = {
        days[0]: day_rows(days[0], 5, sms_type=1),  # another type
        days[1]: day_rows(days[1], 5),  # good
        days[2]: day_rows(days[1], 5),  # the server ignored From/To
    }
    hostile.respond = lambda body: envelope(answers[from_day(body)])
    code = run_cli(hostile, tmp_path / "lake", "--from", str(days[0]), "--to", str(days[2]))
    out = capsys.readouterr().out
    assert code == 1
    assert "1 fetched" in out
    assert "2 failed" in out
    assert "SmsType 1" in out
    assert "outside" in out
    stored = read_lake(tmp_path / "lake").collect()
    assert stored["date"].unique().to_list() == [days[1]]
    assert stored.height == 5


# -- point 11: identical rows on one page are distinct rows ------------------------------


def test_identical_rows_on_one_page_are_kept(hostile: HostileServer) -> None:
    a, b, c = day_rows(DAY, 3)
    pages = {1: [a, a, b], 2: [c]}
    hostile.respond = lambda body: envelope(pages[int(body["Page"])], count_total=4)
    with hostile.client() as client:
        result = fetch_window(client, 2, WINDOW, page_size=3)
    assert result.complete
    assert result.frame.height == 4
    assert result.duplicates_dropped == 0
    assert list(WINDOW_COLUMNS) == result.frame.columns


def test_rows_seen_again_on_the_next_page_are_dropped(hostile: HostileServer) -> None:
    a, b, c, d = day_rows(DAY, 4)
    # A newcomer pushed c from page 1 onto page 2 while paging: c is seen twice.
    pages = {1: [a, a, c], 2: [c, b, d]}
    hostile.respond = lambda body: envelope(pages[int(body["Page"])], count_total=5)
    with hostile.client() as client:
        result = fetch_window(client, 2, WINDOW, page_size=3, max_passes=1)
    assert result.complete
    assert result.frame.height == 5
    assert result.duplicates_dropped == 1


# -- point 9: a price that is not a number is not stored ---------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_price_on_the_wire_fails_the_window(
    hostile: HostileServer, token: str
) -> None:
    rows = json.dumps([row(NOON, SellPrice=0.125)]).replace("0.125", token)
    hostile.respond = lambda body: envelope(raw=rows, count_total=1)
    with hostile.client() as client, pytest.raises(DecodeError, match="SellPrice"):
        fetch_window(client, 2, WINDOW)


# -- point 4: a bad answer cannot delete stored data -------------------------------------


def stored_rows(lake: Path) -> int:
    return read_lake(lake).collect().height


@pytest.mark.parametrize("refresh", [True, False])
def test_an_empty_refetch_keeps_the_stored_partition(
    hostile: HostileServer, tmp_path: Path, refresh: bool
) -> None:
    lake = tmp_path / "lake"
    # Without --refresh, a day not yet settled is fetched again on every sync.
    now = NOON + timedelta(days=4 if refresh else 1)
    options: dict[str, Any] = {"sms_types": [2], "progress": False, "now": now}
    hostile.respond = lambda body: envelope(day_rows(DAY, 40))
    with hostile.client() as client:
        assert sync(lake, DAY, DAY, client=client, **options).complete
        hostile.respond = lambda body: no_data()
        refused = sync(lake, DAY, DAY, client=client, refresh=refresh, **options)
        assert stored_rows(lake) == 40
        accepted = sync(
            lake, DAY, DAY, client=client, refresh=refresh, allow_shrink=True, **options
        )
    window = refused.windows[0]
    assert (window.status, refused.complete) == ("failed", False)
    assert "40" in window.detail
    assert "allow-shrink" in window.detail
    assert accepted.windows[0].status == "fetched"
    assert stored_rows(lake) == 0


@pytest.mark.parametrize(("refetched", "kept"), [(19, True), (20, False), (39, False)])
def test_a_refetch_of_fewer_than_half_the_rows_is_refused(
    hostile: HostileServer, tmp_path: Path, refetched: int, kept: bool
) -> None:
    assert SHRINK_LIMIT == 0.5
    lake = tmp_path / "lake"
    options: dict[str, Any] = {"sms_types": [2], "progress": False, "refresh": True}
    hostile.respond = lambda body: envelope(day_rows(DAY, 40))
    with hostile.client() as client:
        sync(lake, DAY, DAY, client=client, **options)
        hostile.respond = lambda body: envelope(day_rows(DAY, refetched))
        report = sync(lake, DAY, DAY, client=client, **options)
    assert stored_rows(lake) == (40 if kept else refetched)
    assert report.windows[0].status == ("failed" if kept else "fetched")


def test_the_cli_asks_for_allow_shrink(
    hostile: HostileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESMS_API_KEY", API_KEY)
    monkeypatch.setenv("ESMS_SECRET_KEY", SECRET_KEY)
    lake, days = tmp_path / "lake", ["--from", str(DAY), "--to", str(DAY)]
    hostile.respond = lambda body: envelope(day_rows(DAY, 12))
    assert run_cli(hostile, lake, *days) == 0
    hostile.respond = lambda body: no_data()
    assert run_cli(hostile, lake, *days, "--refresh") == 1
    assert "--allow-shrink" in capsys.readouterr().out
    assert stored_rows(lake) == 12
    assert run_cli(hostile, lake, *days, "--refresh", "--allow-shrink") == 0
    assert stored_rows(lake) == 0


def test_the_readme_states_the_limits_the_code_has() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    assert MAX_BODY_BYTES == 32 * 2**20
    assert "`MAX_BODY_BYTES` = 32 MiB" in readme
    assert f"`MAX_PAGES_PER_WINDOW` = {MAX_PAGES_PER_WINDOW:,} pages" in readme
    assert f"{DEFAULT_DEADLINE:g} s" in readme
    assert timedelta(hours=2) == EDGE_TOLERANCE
    assert "`EDGE_TOLERANCE` (2 h)" in readme
    assert SHRINK_LIMIT == 0.5
    assert "under `SHRINK_LIMIT`, half" in readme


def test_fetch_of_a_bad_answer_is_one_line_and_exit_4(
    hostile: HostileServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ESMS_API_KEY", API_KEY)
    monkeypatch.setenv("ESMS_SECRET_KEY", SECRET_KEY)
    hostile.respond = lambda body: envelope(day_rows(DAY, 3, sms_type=1))
    output = tmp_path / "out.parquet"
    days = ["--from", str(DAY), "--to", str(DAY), "--sms-type", "2", "--quiet"]
    code = main(["fetch", *days, "--output", str(output), "--base-url", hostile.base_url])
    err = capsys.readouterr().err
    assert code == 4
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert "SmsType 1" in err
    assert not output.exists()
