"""The client against the simulator over loopback HTTP: pages, faults, errors, secrets."""

from __future__ import annotations

import logging
import math
import socket
import threading
from datetime import date, timedelta

import pytest
import requests

from esms_analytics import EsmsClient, RetryPolicy, Window, fetch_days
from esms_analytics.client import RateLimiter
from esms_analytics.errors import (
    ApiError,
    AuthError,
    ConfigError,
    EsmsError,
    ServiceUnreachableError,
    TransportError,
)
from esms_analytics.simulator import Simulator

from .conftest import NOW, SleepRecorder

DAY = NOW.date() - timedelta(days=1)


def exact(rows: int):
    """A simulator counts= function: ``rows`` customer-care rows on DAY, none elsewhere."""
    return lambda sms_type, day: rows if (sms_type, day) == (2, DAY) else 0


@pytest.mark.parametrize("rows", [0, 1, 499, 500, 501, 25_000])
def test_every_row_of_a_window_arrives_exactly_once(rows: int) -> None:
    with Simulator(now=NOW, counts=exact(rows)) as sim, sim.client() as client:
        pages = list(client.iter_pages(Window.for_day(DAY), 2))
    keys = [(row["ReferenceId"], row["Phone"]) for page in pages for row in page.rows]
    assert len(keys) == rows
    assert len(set(keys)) == rows
    assert [page.number for page in pages] == list(range(1, max(1, math.ceil(rows / 500)) + 1))
    assert all(page.count_total == rows for page in pages)


def test_requests_carry_the_documented_body(sim: Simulator, client: EsmsClient) -> None:
    list(client.iter_pages(Window.for_day(DAY), 2, page_size=7))
    first = sim.requests[0]
    assert first["From"] == f"{DAY} 00:00:00"
    assert first["To"] == f"{DAY} 23:59:59"
    assert first["Page"] == 1
    assert first["PageSize"] == 7
    assert str(first["SmsType"]) == "2"
    assert [request["Page"] for request in sim.requests] == list(range(1, len(sim.requests) + 1))


def test_consecutive_day_windows_partition_a_range(sim: Simulator, client: EsmsClient) -> None:
    days = [DAY - timedelta(days=1), DAY]
    per_day = {
        day: {
            (r["ReferenceId"], r["Phone"])
            for p in client.iter_pages(Window.for_day(day), 2)
            for r in p.rows
        }
        for day in days
    }
    both = Window(Window.for_day(days[0]).start, Window.for_day(days[1]).end)
    together = [(r["ReferenceId"], r["Phone"]) for p in client.iter_pages(both, 2) for r in p.rows]
    assert per_day[days[0]].isdisjoint(per_day[days[1]])
    assert sorted(together) == sorted(per_day[days[0]] | per_day[days[1]])


def test_no_data_is_an_empty_window(client: EsmsClient) -> None:
    pages = list(client.iter_pages(Window.for_day(date(2020, 1, 1)), 2))
    assert len(pages) == 1
    assert pages[0].rows == []
    assert pages[0].count_total == 0


@pytest.mark.parametrize(
    "fault", ["http500", "http503", "drop", "truncate", "malformed", "code99", "code160"]
)
def test_each_fault_is_recovered_with_one_more_attempt(
    sim: Simulator, client: EsmsClient, sleeps: SleepRecorder, fault: str
) -> None:
    clean = client.get_page(Window.for_day(DAY), 2)
    sim.reset_requests()
    sim.faults.queue(fault)
    page = client.get_page(Window.for_day(DAY), 2)
    assert page.attempts == 2
    assert len(sim.requests) == 2
    assert len(sleeps.calls) == 1
    assert page.rows == clean.rows


def test_slow_response_past_the_timeout_is_retried(sim: Simulator, sleeps: SleepRecorder) -> None:
    sim.faults.slow_seconds = 1.0
    sim.faults.queue("slow")
    with sim.client(sleep=sleeps, timeout=0.3) as client:
        page = client.get_page(Window.for_day(DAY), 2)
    assert page.attempts == 2
    assert len(sleeps.calls) == 1


def test_retry_after_is_honoured(sim: Simulator, client: EsmsClient, sleeps: SleepRecorder) -> None:
    sim.faults.retry_after = 7
    sim.faults.queue("http429", "http429")
    page = client.get_page(Window.for_day(DAY), 2)
    assert page.attempts == 3
    assert sleeps.calls == [7.0, 7.0]


def test_backoff_grows_and_is_capped(sim: Simulator, sleeps: SleepRecorder) -> None:
    policy = RetryPolicy(max_attempts=6, backoff_initial=1, backoff_max=5, jitter=0)
    sim.faults.queue(*["http503"] * 5)
    with sim.client(sleep=sleeps, retry=policy) as client:
        assert client.get_page(Window.for_day(DAY), 2).attempts == 6
    assert sleeps.calls == [1, 2, 4, 5, 5]


def test_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(backoff_initial=2, jitter=0.5)
    delays = [policy.delay(2) for _ in range(200)]
    assert all(2.0 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 100


@pytest.mark.parametrize(("fault", "error"), [("http503", TransportError), ("code99", ApiError)])
def test_after_the_last_attempt_the_error_says_where_and_how_often(
    sim: Simulator, client: EsmsClient, fault: str, error: type[EsmsError]
) -> None:
    sim.faults.queue(*[fault] * 4)
    with pytest.raises(error) as caught:
        client.get_page(Window.for_day(DAY), 2, page=3)
    message = str(caught.value)
    assert "GetSmsSentData_V2" in message
    assert f"window {DAY}" in message
    assert "page 3" in message
    assert "4 attempts" in message
    assert caught.value.attempts == 4  # type: ignore[attr-defined]
    assert len(sim.requests) == 4


def test_wrong_credentials_fail_at_once(sim: Simulator, sleeps: SleepRecorder) -> None:
    with (
        EsmsClient("wrong", "keys", base_url=sim.base_url, sleep=sleeps) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.get_page(Window.for_day(DAY), 2)
    assert caught.value.code == "101"
    assert "ESMS_API_KEY" in str(caught.value)
    assert len(sim.requests) == 1
    assert sleeps.calls == []


def test_whitelist_code_says_what_to_do(sim: Simulator, client: EsmsClient) -> None:
    sim.faults.queue("code:140")
    with pytest.raises(ApiError, match="whitelist") as caught:
        client.get_page(Window.for_day(DAY), 2)
    assert caught.value.code == "140"
    assert len(sim.requests) == 1


def test_unknown_code_fails_with_the_code_and_the_server_message(
    sim: Simulator, client: EsmsClient
) -> None:
    sim.faults.queue("code:777")
    with pytest.raises(ApiError, match=r"CodeResult 777 \(Error 777\.\)") as caught:
        client.get_page(Window.for_day(DAY), 2)
    assert caught.value.server_message == "Error 777."
    assert len(sim.requests) == 1


def test_http_404_names_the_base_url(sim: Simulator, sleeps: SleepRecorder) -> None:
    with (
        EsmsClient("k", "s", base_url=sim.base_url + "/nope", sleep=sleeps) as client,
        pytest.raises(TransportError, match=r"HTTP 404.*base_url"),
    ):
        client.get_page(Window.for_day(DAY), 2)


def test_numbers_as_strings_decode_the_same() -> None:
    frames = []
    for share in (0.0, 1.0):
        with (
            Simulator(now=NOW, string_numbers=share, daily_volume=80) as sim,
            sim.client() as client,
        ):
            frames.append(fetch_days(client, DAY, sms_types=[2]))
    assert frames[0].height > 0
    assert frames[0].equals(frames[1])


def test_the_simulator_escapes_dates_as_wcf_does(sim: Simulator) -> None:
    body = {
        "ApiKey": sim.api_key,
        "SecretKey": sim.secret_key,
        "SmsType": "2",
        "From": f"{DAY} 00:00:00",
        "To": f"{DAY} 23:59:59",
        "Page": 1,
        "PageSize": 2,
    }
    raw = requests.post(f"{sim.base_url}/GetSmsSentData_V2", json=body, timeout=5).text
    assert '"SentTime": "\\/Date(' in raw
    assert "+0700)\\/" in raw


@pytest.mark.parametrize(
    ("change", "expected"),
    [({"PageSize": 501}, "PageSize"), ({"Page": 0}, "Page starts at 1"), ({"SmsType": "3"}, "118")],
)
def test_the_simulator_rejects_what_the_service_rejects(
    sim: Simulator, change: dict[str, object], expected: str
) -> None:
    body = {
        "ApiKey": sim.api_key,
        "SecretKey": sim.secret_key,
        "SmsType": "2",
        "From": f"{DAY} 00:00:00",
        "To": f"{DAY} 23:59:59",
        "Page": 1,
        "PageSize": 5,
    }
    answer = requests.post(
        f"{sim.base_url}/GetSmsSentData_V2", json={**body, **change}, timeout=5
    ).json()
    assert answer["CodeResult"] != "100"
    assert expected in answer["CodeResult"] + answer["ErrorMessage"]


def test_pages_are_newest_first(client: EsmsClient) -> None:
    rows = [
        row for page in client.iter_pages(Window.for_day(DAY), 2, page_size=50) for row in page.rows
    ]
    created = [int(row["SentTime"][6:19]) for row in rows if row["SendStatus"] in (5, "5")]
    assert len(created) > 10
    # SentTime follows creation plus a few seconds' queueing: newest first, give or take.
    assert created[0] > created[-1]


def test_statuses_settle_as_the_clock_moves() -> None:
    with Simulator(now=NOW, daily_volume=2000) as sim, sim.client() as client:
        yesterday = sim.today - timedelta(days=1)
        early = fetch_days(client, yesterday, sms_types=[2])
        sim.clock.advance(timedelta(days=3))
        late = fetch_days(client, yesterday, sms_types=[2])
    assert late.height == early.height > 0
    assert not early["is_final"].all()
    assert late["is_final"].all()
    keys = ["reference_id", "phone"]
    assert late.select(keys).sort(keys).equals(early.select(keys).sort(keys))


def test_the_same_seed_gives_the_same_history() -> None:
    frames = []
    for _ in range(2):
        with Simulator(now=NOW, seed=3, daily_volume=50) as sim, sim.client() as client:
            frames.append(fetch_days(client, DAY - timedelta(days=2), DAY, sms_types=[1]))
    assert frames[0].equals(frames[1])


def test_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESMS_API_KEY", raising=False)
    monkeypatch.delenv("ESMS_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="ESMS_API_KEY and ESMS_SECRET_KEY"):
        EsmsClient()


def test_credentials_and_url_come_from_the_environment(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv("ESMS_BASE_URL", sim.base_url)
    with EsmsClient() as client:
        assert client.get_page(Window.for_day(DAY), 2).count_total > 0


def test_the_default_base_url_is_the_real_service() -> None:
    client = EsmsClient("k", "s")
    assert client.url == "https://rest.esms.vn/MainService.svc/json/GetSmsSentData_V2"


@pytest.mark.parametrize("url", ["http://rest.esms.vn/MainService.svc/json", "ftp://x", "nohost"])
def test_unsafe_or_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        EsmsClient("k", "s", base_url=url)


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    client = EsmsClient("k", "s", base_url="http://10.0.0.5/x", allow_insecure_http=True)
    assert client.base_url == "http://10.0.0.5/x"


def test_bad_page_arguments_are_refused_before_any_request(client: EsmsClient) -> None:
    with pytest.raises(ConfigError, match="1-based"):
        client.get_page(Window.for_day(DAY), 2, page=0)
    with pytest.raises(ConfigError, match="page_size"):
        client.get_page(Window.for_day(DAY), 2, page_size=501)
    with pytest.raises(ConfigError, match="SmsType 3"):
        client.get_page(Window.for_day(DAY), 3)


def test_a_reversed_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="swap"):
        Window(Window.for_day(DAY).end, Window.for_day(DAY).start)


def test_secrets_never_appear_in_logs_errors_or_reprs(
    sim: Simulator, caplog: pytest.LogCaptureFixture, sleeps: SleepRecorder
) -> None:
    api_key, secret_key = "APIKEY-7f3a9c", "SECRET-b81d22"
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with EsmsClient(
        api_key, secret_key, base_url=sim.base_url, sleep=sleeps, retry=RetryPolicy(max_attempts=2)
    ) as client:
        texts.append(repr(client))
        texts.append(str(vars(client).get("base_url")))
        for faults in (["code:101"], ["http503", "truncate"], ["code99", "code160"], ["code:140"]):
            sim.faults.queue(*faults)
            with pytest.raises(EsmsError) as caught:
                client.get_page(Window.for_day(DAY), 2)
            texts += [str(caught.value), repr(caught.value)]
        with pytest.raises(AuthError) as caught:  # the simulator's own 101
            client.get_page(Window.for_day(DAY), 2)
        texts.append(str(caught.value))
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(request) for request in sim.requests]
    assert len(caplog.records) >= 3
    for text in texts:
        assert api_key not in text
        assert secret_key not in text


def test_the_rate_limit_spaces_requests_across_threads() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.25 * n for n in range(1, 8)])


def test_a_rate_limited_client_really_waits(sim: Simulator) -> None:
    with sim.client(rate_limit=1000.0) as client:
        assert client.rate_limiter.per_second == 1000.0
        list(client.iter_pages(Window.for_day(DAY), 2, page_size=20))
    with pytest.raises(ConfigError):
        RateLimiter(0)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Unknown fields, nested or not, are ignored by the fast path.
        (
            b'{"CodeResult":"100","CountTotal":"1","SentData":[{"SmsId":"7","Extra":[1,{"b":2}]}]}',
            {"SmsId": "7", "Campaign": None},
        ),
        # A value of the wrong JSON type falls back to the slow path and stays visible.
        (
            b'{"CodeResult":100,"CountTotal":1,"SentData":[{"SmsId":1,"Campaign":{"name":"x"}}]}',
            {"SmsId": "1", "Campaign": '{"name": "x"}'},
        ),
    ],
)
def test_odd_but_valid_bodies_keep_every_row(body: bytes, expected: dict[str, object]) -> None:
    from esms_analytics.wire import Envelope, parse_envelope

    envelope = parse_envelope(body)
    assert isinstance(envelope, Envelope)
    assert envelope.code == "100"
    assert envelope.raw.select(list(expected)).row(0, named=True) == expected


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>busy</html>", "not valid JSON"),
        (b"[1, 2]", "no CodeResult"),
        (b'{"CodeResult":"100","SentData":{"a":1}}', "SentData is not a list"),
    ],
)
def test_unusable_bodies_are_named(body: bytes, problem: str) -> None:
    from esms_analytics.wire import parse_envelope

    assert problem in str(parse_envelope(body))


def test_the_environment_is_read_once_per_client_not_per_request(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests reads the proxy variables again for every request unless told otherwise.
    lookups: list[str] = []
    original = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        lookups.append(url)
        return original(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    with sim.client() as client:
        pages = list(client.iter_pages(Window.for_day(DAY), 2, page_size=10))
    assert len(pages) > 3
    assert lookups == [client.url]


def test_a_proxy_named_in_the_environment_is_still_used(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, nowhere)
    with (
        sim.client(retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(ServiceUnreachableError),
    ):
        client.get_page(Window.for_day(DAY), 2)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with sim.client(retry=RetryPolicy(max_attempts=1)) as client:
        assert client.get_page(Window.for_day(DAY), 2).count_total > 0
