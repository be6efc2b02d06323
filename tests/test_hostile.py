"""The client and sync against a hostile server: keys stay home, bad answers store nothing."""

from __future__ import annotations

import logging
from datetime import date, datetime, time

import pytest

from esms_analytics import EsmsClient, Window
from esms_analytics.codes import VN_TZ
from esms_analytics.errors import ConfigError, DecodeError, EsmsError, TransportError
from esms_analytics.windows import fetch_window

from .hostile import API_KEY, SECRET_KEY, Answer, HostileServer, envelope, row

DAY = date(2026, 11, 17)
NOON = datetime.combine(DAY, time(12), tzinfo=VN_TZ)
WINDOW = Window.for_day(DAY)


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
