"""The HTTP client for eSMS's ``GetSmsSentData_V2``: windows, pages, retries, rate limit.

One :class:`EsmsClient` owns one ``requests.Session``. It sends the documented
JSON body (``ApiKey``, ``SecretKey``, ``SmsType``, ``From``, ``To``, ``Page``,
``PageSize``), walks 1-based pages of a :class:`Window` and yields each
:class:`Page` with its context. Decoding happens downstream (``decode``).

Protocol facts this module relies on (see ``README.md``, "Limits and assumptions"):

- ``From``/``To`` filter on the message's *creation* time, in Vietnam local
  time, both ends inclusive to the second: a day is ``D 00:00:00``–``D 23:59:59``.
- Numbers may come as strings and strings as numbers (``"100"`` or ``100``).
- Errors come back as HTTP 200 with a ``CodeResult``: 100 success, 105 "no
  data" (an empty window here), 101 bad credentials (never retried), 99 and
  160 transient (retried); any other code fails with the server's message.
- Transport faults (connection errors, timeouts, HTTP 429 and 5xx, a
  truncated or non-JSON body) are retried with exponential backoff, jitter and
  a cap; ``Retry-After`` is honoured.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import ipaddress
import itertools
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, NamedTuple

import polars as pl
import requests
import requests.adapters
from urllib3.exceptions import HTTPError, LocationParseError, ReadTimeoutError
from urllib3.util import parse_url

from esms_analytics.arguments import check_sms_type
from esms_analytics.codes import ENV_API_KEY, ENV_BASE_URL, ENV_SECRET_KEY, VN_TZ
from esms_analytics.errors import (
    AnswerError,
    ApiError,
    AuthError,
    ConfigError,
    EsmsError,
    ServiceUnreachableError,
    StoppedError,
    TransportError,
)
from esms_analytics.wire import (
    CODE_AUTH_FAILED,
    CODE_NO_DATA,
    CODE_SUCCESS,
    ENDPOINT,
    MAX_PAGE_SIZE,
    RAW_SCHEMA,
    Envelope,
    parse_envelope,
)

logger = logging.getLogger("esms_analytics")

DEFAULT_BASE_URL: Final = "https://rest.esms.vn/MainService.svc/json"

#: HTTP statuses worth another attempt: rate limiting and server-side faults.
RETRY_STATUS: Final = frozenset((429, *range(500, 600)))
#: CodeResults worth another attempt: 99 unknown error, 160 too many requests.
RETRY_CODES: Final = frozenset(("99", "160"))

#: What to tell the caller for the codes eSMS documents as final failures.
CODE_HINTS: Final[Mapping[str, str]] = {
    "102": "the account has no price list or is locked; contact eSMS support",
    "118": "eSMS does not support this SmsType for the account; check sms_type",
    "140": (
        "the IP address of this machine is not on the account's whitelist; "
        "add it in the eSMS portal (Account > API settings)"
    ),
    "143": "the account is not activated or is locked; contact eSMS support",
}
TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"

MIN_REDACTED_LENGTH: Final = 4
#: The largest answer body read, after decompression. A page is at most 500 rows; a row of
#: the longest real message (a few hundred characters, 2,000 allowed for, each escaped as
#: \uXXXX) with its other fields is under 13 KB, so a page is under 6.5 MB. Past this cap
#: the answer is refused while it streams, never held whole.
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
#: How much of a body one read asks for.
READ_CHUNK_BYTES: Final = 64 * 1024
#: Seconds one request may take in all, however steadily its body trickles; ``timeout`` only
#: bounds each read. A 6.5 MB page needs a tenth of this at 5 Mbit/s.
DEFAULT_DEADLINE: Final = 120.0
#: Most pages one window may have: 5 million messages of one type in one day at 500 a page.
#: A CountTotal implying more is not believed; the window fails instead of planning them.
MAX_PAGES_PER_WINDOW: Final = 10_000
#: Pages of one window submitted to the page pool ahead of the one being read.
DEFAULT_PAGES_AHEAD: Final = 4
#: A server's value quoted in a message is cut to this many characters.
MAX_QUOTED_CHARS: Final = 200
#: The simulator marks its answers with this header, so its rows never enter a real lake.
SIMULATOR_HEADER: Final = "X-Esms-Simulator"


@dataclass(frozen=True)
class Window:
    """A creation-time range, inclusive to the second at both ends, in Vietnam time.

    >>> w = Window.for_day(date(2024, 1, 17))
    >>> w.params()
    {'From': '2024-01-17 00:00:00', 'To': '2024-01-17 23:59:59'}
    >>> str(w)
    '2024-01-17'
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_vietnam(self.start))
        object.__setattr__(self, "end", _as_vietnam(self.end))
        if self.end < self.start:
            raise ConfigError(
                f"window ends ({self.end:{TIME_FORMAT}}) before it starts "
                f"({self.start:{TIME_FORMAT}}); swap the two"
            )

    @classmethod
    def for_day(cls, day: date) -> Window:
        """Make the window of one Vietnam-local day: ``D 00:00:00`` to ``D 23:59:59``."""
        start = datetime(day.year, day.month, day.day, tzinfo=VN_TZ)
        return cls(start, start + timedelta(days=1, seconds=-1))

    @property
    def day(self) -> date | None:
        """The day this window covers exactly, or None for any other range."""
        whole = Window.for_day(self.start.date())
        return self.start.date() if whole == self else None

    def params(self) -> dict[str, str]:
        """Return the ``From`` / ``To`` fields of the request body."""
        return {"From": self.start.strftime(TIME_FORMAT), "To": self.end.strftime(TIME_FORMAT)}

    def __str__(self) -> str:
        day = self.day
        if day is not None:
            return day.isoformat()
        return f"{self.start:{TIME_FORMAT}}..{self.end:{TIME_FORMAT}}"


def _as_vietnam(moment: datetime) -> datetime:
    # Naive datetimes are taken as Vietnam local time, the service's own clock.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=VN_TZ, microsecond=0)
    return moment.astimezone(VN_TZ).replace(microsecond=0)


@dataclass(frozen=True)
class Page:
    """One page of ``GetSmsSentData_V2`` with the context it was fetched in.

    ``raw`` holds the page's ``SentData`` rows as a frame of strings with
    :data:`RAW_SCHEMA`, parsed straight from the response bytes (the decoder's
    fast path); ``rows`` gives them as the service sent them, as dicts.
    ``count_total`` is the service's ``CountTotal`` for the whole window at
    the time of this request.
    """

    window: Window
    sms_type: int
    number: int
    page_size: int
    count_total: int
    raw: pl.DataFrame = field(repr=False)
    body: bytes = field(default=b"", repr=False)
    attempts: int = 1

    @property
    def pages_total(self) -> int:
        """ceil(CountTotal / PageSize): how many pages the window has now."""
        return math.ceil(self.count_total / self.page_size)

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The ``SentData`` entries exactly as the service sent them (parsed on first use).

        For people looking at a page; the pager and the decoder use ``raw``.
        """
        if not self.body:
            return []
        rows = json.loads(self.body).get("SentData") or []
        return list(rows)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is retried.

    Delay before attempt ``n + 1`` is ``min(backoff_max, backoff_initial * 2**(n-1))``
    scaled by a random factor in ``[1 - jitter, 1]``; a ``Retry-After`` header
    replaces it (up to ``retry_after_max`` seconds; the client's log says when
    a server asked for longer).

    >>> RetryPolicy(jitter=0).delay(1), RetryPolicy(jitter=0).delay(4)
    (0.5, 4.0)
    >>> RetryPolicy(jitter=0).delay(20)
    30.0
    >>> RetryPolicy().delay(1, retry_after=7.0)
    7.0
    """

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5
    retry_after_max: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_max)
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return float(base * (1 - self.jitter * random.random()))


class RateLimiter:
    """At most ``per_second`` acquisitions a second, shared by every thread.

    ``None`` disables the limit. Slots are handed out in order, so threads
    queue instead of bursting.
    """

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if per_second is not None and per_second <= 0:
            raise ConfigError(f"rate limit must be positive requests per second, got {per_second}")
        self.per_second = per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def acquire(self) -> None:
        """Block until this caller may send one request."""
        if self.per_second is None:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.per_second
        if slot > now:
            self._sleep(slot - now)


class _Request(NamedTuple):
    """Which page of which window a request asks for; its text names it in messages."""

    window: Window
    sms_type: int
    page: int
    page_size: int

    def __str__(self) -> str:
        return f"{ENDPOINT} SmsType={self.sms_type} window {self.window} page {self.page}"

    def facts(self) -> dict[str, Any]:
        """Return the request's facts as error attributes."""
        return {"sms_type": self.sms_type, "window": str(self.window), "page": self.page}


@dataclass(frozen=True)
class _Retryable:
    """Why an attempt failed in a way worth another attempt."""

    problem: str
    retry_after: float | None = None
    #: The CodeResult, when the service itself asked for a retry (99, 160).
    code: str | None = None
    #: Why nothing answered at all (refused, DNS), when that was the failure.
    unreachable: str | None = None


class EsmsClient:
    """A client for eSMS's message history, ``GetSmsSentData_V2``.

    Parameters
    ----------
    api_key, secret_key : str, optional
        Your eSMS credentials; default to the ``ESMS_API_KEY`` and
        ``ESMS_SECRET_KEY`` environment variables.
    base_url : str, optional
        Default ``ESMS_BASE_URL`` or ``https://rest.esms.vn/MainService.svc/json``.
        Plain ``http://`` is refused for any host but loopback, because the
        keys travel in the request body, unless ``allow_insecure_http=True``.
    timeout : float
        Seconds to wait for connect and for each read of a response.
    deadline : float
        Seconds one request may take in all, body included (:data:`DEFAULT_DEADLINE`).
        Bodies over :data:`MAX_BODY_BYTES` are refused while they stream.
    retry : RetryPolicy
        Attempts and backoff for transient faults.
    rate_limit : float or None
        Requests per second across every thread using this client.
    sleep : callable, optional
        How to wait between attempts (tests pass a recorder); by default a wait
        that ``stop`` cuts short.
    stop : threading.Event, optional
        Set it (from a signal handler or another thread) and the client sends no
        further request: every call raises :class:`StoppedError` instead.
        :meth:`close` sets it too. Default: a new event, ``client.stop``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        secret_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        deadline: float = DEFAULT_DEADLINE,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = 10.0,
        allow_insecure_http: bool = False,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ):
        api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY)
        secret_key = secret_key if secret_key is not None else os.environ.get(ENV_SECRET_KEY)
        missing = [
            name
            for name, value in ((ENV_API_KEY, api_key), (ENV_SECRET_KEY, secret_key))
            if not value
        ]
        if missing:
            raise ConfigError(
                f"missing eSMS credentials: set {' and '.join(missing)} in the environment "
                "or pass api_key= and secret_key= to EsmsClient (find them in the eSMS "
                "portal under Account > API settings)"
            )
        assert api_key is not None
        assert secret_key is not None
        if timeout <= 0 or deadline <= 0:
            raise ConfigError(
                f"timeout and deadline must be positive seconds, got {timeout} and {deadline}"
            )
        self._api_key = api_key
        self._secret_key = secret_key
        self._secret_forms = _escaped_forms(api_key, secret_key)
        self.base_url = _check_base_url(
            base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL, allow_insecure_http
        )
        self.url = f"{self.base_url}/{ENDPOINT}"
        self.timeout = timeout
        self.deadline = deadline
        self.retry = retry or RetryPolicy()
        self.stop = stop if stop is not None else threading.Event()
        self._sleep = sleep if sleep is not None else self._wait
        self.rate_limiter = RateLimiter(rate_limit, sleep=self._sleep)
        self._session = _session_for(self.url)
        #: HTTP requests sent, retries included; retries alone; bytes of answer bodies read.
        self.requests_made = 0
        self.retries_made = 0
        self.bytes_received = 0
        self._count_lock = threading.Lock()
        #: True once an answer came from the esms-analytics simulator, not eSMS.
        self.simulated = False

    def __repr__(self) -> str:
        return f"EsmsClient(base_url={self.base_url!r}, api_key='***', secret_key='***')"

    def __enter__(self) -> EsmsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop sending requests and close the HTTP session and its connections."""
        self.stop.set()
        self._session.close()

    def _wait(self, seconds: float) -> None:
        # Waiting on the stop event rather than sleeping lets Ctrl-C end a backoff at once.
        self.stop.wait(seconds)

    def _check_stop(self, request: _Request) -> None:
        if self.stop.is_set():
            raise StoppedError(f"{request} was not sent: the client was asked to stop")

    # -- one request --------------------------------------------------------

    def get_page(
        self, window: Window, sms_type: int, page: int = 1, page_size: int = MAX_PAGE_SIZE
    ) -> Page:
        """Fetch one page (1-based) of ``window``, retrying transient faults.

        Raises
        ------
        AuthError
            CodeResult 101, at once.
        ApiError
            Any other unsuccessful CodeResult, or 99/160 on every attempt.
        TransportError
            Connection, timeout, HTTP status or body failures on every attempt.
        """
        check_sms_type(sms_type)
        if page < 1:
            raise ConfigError(f"pages are 1-based, got page={page}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}")
        body = {
            "ApiKey": self._api_key,
            "SecretKey": self._secret_key,
            "SmsType": str(sms_type),
            **window.params(),
            "Page": page,
            "PageSize": page_size,
        }
        request = _Request(window, sms_type, page, page_size)
        attempts = self.retry.max_attempts
        for attempt in range(1, attempts + 1):
            self._check_stop(request)
            self.rate_limiter.acquire()
            self._check_stop(request)
            outcome = self._attempt(body, request)
            if isinstance(outcome, Envelope):
                return self._page_from(outcome, request, attempt)
            if attempt == attempts:
                raise self._gave_up(outcome, request, attempts)
            wait = self.retry.delay(attempt, outcome.retry_after)
            shortened = self._shortened(outcome.retry_after, wait)
            # A retry is not a failure: the window's outcome is reported once, by the caller.
            # Only a wait cut shorter than the server asked is worth a warning of its own.
            logger.log(
                logging.WARNING if shortened else logging.INFO,
                "%s: %s; retrying in %.2fs%s (attempt %d of %d)",
                request,
                self.redact(outcome.problem),
                wait,
                shortened,
                attempt + 1,
                attempts,
            )
            with self._count_lock:
                self.retries_made += 1
            self._sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _shortened(self, retry_after: float | None, wait: float) -> str:
        """Say so when the server asked for a longer wait than the policy allows."""
        if retry_after is None or retry_after <= wait:
            return ""
        return (
            f", not the Retry-After {retry_after:g}s the server asked for (capped by "
            f"RetryPolicy.retry_after_max); if it keeps refusing, wait that long or raise the cap"
        )

    def _gave_up(self, outcome: _Retryable, request: _Request, attempts: int) -> EsmsError:
        if outcome.unreachable is not None:
            return self._unreachable(outcome.unreachable, request, attempts)
        message = self.redact(
            f"{request} failed after {attempts} attempts: {outcome.problem} "
            f"(base URL {self.base_url}); check the network and the service, then run again"
        )
        facts = request.facts()
        if outcome.code is not None:
            return ApiError(message, code=outcome.code, attempts=attempts, **facts)
        return TransportError(message, attempts=attempts, **facts)

    def _attempt(self, body: dict[str, Any], request: _Request) -> Envelope | _Retryable:
        """One HTTP exchange: the envelope of a usable answer, or why to retry.

        Non-retryable answers raise here.
        """
        with self._count_lock:
            self.requests_made += 1
        started = time.monotonic()
        try:
            # Never follow a redirect: the body carries the keys, and the service has no
            # reason to send one; a 3xx is reported instead. Stream, so that the body is
            # read in chunks against the size cap and the deadline.
            response = self._session.post(
                self.url, json=body, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except requests.Timeout:
            return _Retryable(f"no response within {self.timeout:g}s")
        except requests.exceptions.SSLError as exc:
            # A handshake that failed once fails the same way every time: no retry.
            cause = _tls_cause(exc, self.url, self.timeout)
            raise self._unreachable(cause, request, 1) from exc
        except requests.RequestException as exc:
            # The exception text may quote the URL but never the body; still redact.
            return _Retryable(
                f"connection failed ({type(exc).__name__})",
                unreachable=_unreachable_cause(exc, self.url),
            )
        if response.headers.get(SIMULATOR_HEADER):
            self.simulated = True
        with response:
            content = self._content(response, request, started)
        if isinstance(content, _Retryable):
            return content
        envelope = parse_envelope(content)
        if isinstance(envelope, str):
            return _Retryable(envelope)
        if envelope.code in (CODE_SUCCESS, CODE_NO_DATA):
            return envelope
        if envelope.code in RETRY_CODES:
            message = envelope.error_message or "no message"
            return _Retryable(f"CodeResult {envelope.code} ({message})", code=envelope.code)
        raise self._refusal(envelope, request)

    def _content(
        self, response: requests.Response, request: _Request, started: float
    ) -> bytes | _Retryable:
        """Return the body of a 200 answer, or why to retry; any other status raises here."""
        status = response.status_code
        if status in RETRY_STATUS:
            return _Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise self._redirected(response, request)
        if status != 200:
            raise TransportError(
                self.redact(
                    f"{request}: HTTP {status} from {self.url}; check base_url "
                    f"(it should end in /MainService.svc/json)"
                ),
                **request.facts(),
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise self._too_large(request, f"declares {int(declared):,} bytes")
        return self._read_body(response, request, started)

    def _read_body(
        self, response: requests.Response, request: _Request, started: float
    ) -> bytes | _Retryable:
        """Read the body chunk by chunk, stopping past the size cap or the deadline.

        ``read1`` returns whatever one read of the socket brings, so a body
        trickling a byte at a time still comes back to the deadline check.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.raw.read1(READ_CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise self._too_large(request, "kept coming")
                if time.monotonic() - started > self.deadline:
                    return _Retryable(
                        f"the answer did not finish within the deadline of {self.deadline:g}s "
                        f"({size:,} bytes by then)"
                    )
                chunks.append(chunk)
        except ReadTimeoutError:
            return _Retryable(f"the body stalled for {self.timeout:g}s")
        except (HTTPError, OSError) as exc:
            return _Retryable(f"the body broke off ({type(exc).__name__}, {size:,} bytes read)")
        finally:
            with self._count_lock:
                self.bytes_received += size
        return b"".join(chunks)

    def _too_large(self, request: _Request, how: str) -> TransportError:
        # Not retried: a server sending a body this size would send it again.
        return TransportError(
            f"{request}: the answer {how}, larger than the {MAX_BODY_BYTES:,} bytes "
            f"(MAX_BODY_BYTES) any page of {MAX_PAGE_SIZE} rows needs; it was not read; "
            "check base_url, or report it to eSMS",
            **request.facts(),
        )

    def _redirected(self, response: requests.Response, request: _Request) -> TransportError:
        location = response.headers.get("Location") or "(no Location header)"
        return TransportError(
            self.redact(
                f"{request}: HTTP {response.status_code} from {self.url} redirects to "
                f"{location[:MAX_QUOTED_CHARS]!r}; not followed, because the request carries "
                "the ApiKey and SecretKey; set base_url to the service's own address "
                "(it ends in /MainService.svc/json)"
            ),
            **request.facts(),
        )

    def _unreachable(self, cause: str, request: _Request, attempts: int) -> EsmsError:
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        return ServiceUnreachableError(
            self.redact(
                f"cannot reach {self.url}: {cause} ({tries}); check --base-url or "
                f"{ENV_BASE_URL} and that the service is running"
            ),
            url=self.url,
            cause=cause,
            attempts=attempts,
            **request.facts(),
        )

    def _refusal(self, envelope: Envelope, request: _Request) -> ApiError:
        """Build the error for a final, unsuccessful CodeResult."""
        code, server_message = self.redact(envelope.code), self.redact(envelope.error_message)
        message = self.redact(
            f"{request}: eSMS answered CodeResult {code}"
            f"{f' ({server_message})' if server_message else ''}; "
        )
        facts = request.facts()
        if code == CODE_AUTH_FAILED:
            return AuthError(
                message + f"the ApiKey/SecretKey pair was refused by {self.base_url}; "
                f"check {ENV_API_KEY} and {ENV_SECRET_KEY}",
                code=code,
                server_message=server_message,
                **facts,
            )
        hint = CODE_HINTS.get(code, "see eSMS's table of error codes")
        return ApiError(message + hint, code=code, server_message=server_message, **facts)

    def _page_from(self, envelope: Envelope, request: _Request, attempts: int) -> Page:
        window, sms_type, number, page_size = request
        if envelope.code == CODE_NO_DATA:
            empty = pl.DataFrame(schema=RAW_SCHEMA)
            return Page(window, sms_type, number, page_size, 0, empty, b"", attempts)
        raw_total = envelope.count_total
        try:
            count_total = int(float(raw_total)) if raw_total is not None else envelope.raw.height
        except ValueError as exc:
            raise TransportError(
                self.redact(f"{request}: CountTotal {raw_total!r} is not a number"),
                attempts=attempts,
                **request.facts(),
            ) from exc
        logger.debug("%s: %d rows of CountTotal %d", request, envelope.raw.height, count_total)
        page = Page(
            window, sms_type, number, page_size, count_total, envelope.raw, envelope.body, attempts
        )
        if page.pages_total > MAX_PAGES_PER_WINDOW:
            raise AnswerError(
                f"{request}: CountTotal {count_total:,} means {page.pages_total:,} pages of "
                f"{page_size}, more than the {MAX_PAGES_PER_WINDOW:,} one window may have "
                "(MAX_PAGES_PER_WINDOW); not believed, so the window is not fetched; check "
                "base_url, or report it to eSMS",
                attempts=attempts,
                **request.facts(),
            )
        return page

    def redact(self, text: str) -> str:
        """Return ``text`` with the ApiKey and SecretKey replaced by ``***``.

        Every message quoting a server's value goes through here: a server may
        echo the keys anywhere. The keys are also replaced as JSON or ``repr``
        would have escaped them on the way into the message.

        >>> EsmsClient("APIKEY-1234", "SECRET-5678").redact("the server said SECRET-5678")
        'the server said ***'
        """
        for form in self._secret_forms:
            text = text.replace(form, "***")
        return text

    # -- many requests ------------------------------------------------------

    def iter_pages(
        self,
        window: Window,
        sms_type: int,
        *,
        page_size: int = MAX_PAGE_SIZE,
        pool: Executor | None = None,
        in_flight: threading.Semaphore | None = None,
        ahead: int = DEFAULT_PAGES_AHEAD,
    ) -> Iterator[Page]:
        """Yield the pages of one window in order, 1-based, until the last or an empty page.

        The first page's ``CountTotal`` says how many pages follow; with ``pool``
        (a thread pool) they are fetched concurrently on it, at most ``ahead``
        submitted beyond the page being read, and ``in_flight`` bounds the
        requests under way across every caller. The number of pages is then
        recomputed from the latest ``CountTotal``, so rows that arrive while
        paging extend the walk instead of being cut off, up to
        :func:`page_limit`: rows arriving faster than they can be paged end the
        walk rather than prolong it forever. A ``CountTotal`` implying more than
        :data:`MAX_PAGES_PER_WINDOW` pages raises :class:`AnswerError`.
        """
        gate = in_flight if in_flight is not None else contextlib.nullcontext()

        def fetch(number: int) -> Page:
            with gate:
                return self.get_page(window, sms_type, number, page_size)

        first = last = fetch(1)
        yield first
        limit = page_limit(first.count_total, page_size)
        if pool is not None and first.raw.height and first.pages_total > 1:
            numbers = range(2, min(first.pages_total, limit) + 1)
            for last in _in_order(pool, fetch, numbers, ahead):
                yield last
        while last.raw.height and last.number < min(last.pages_total, limit):
            last = fetch(last.number + 1)
            yield last


def _session_for(url: str) -> requests.Session:
    """Make a session for ``url`` that reads the environment once, not on every request.

    ``requests`` looks up the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``...),
    the CA-bundle variables and ``~/.netrc`` again for each request, about a
    tenth of a millisecond: as much CPU as the rest of preparing the request.
    The proxies and CA bundle are taken here, once, as ``requests`` would take
    them; ``~/.netrc`` is not read, since the service wants no HTTP credentials
    (its keys travel in the body).
    """
    session = requests.Session()
    session.headers.update({"Accept": "application/json"})
    # Enough pooled connections for a sync's window and page threads.
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    environment = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies, session.verify = environment["proxies"], environment["verify"]
    session.trust_env = False
    return session


def _in_order(
    pool: Executor, fetch: Callable[[int], Page], numbers: Iterable[int], ahead: int
) -> Iterator[Page]:
    """``pool.map(fetch, numbers)``, but with at most ``ahead`` calls submitted and unread.

    ``Executor.map`` submits every call at once, which a lying ``CountTotal``
    turns into millions of queued requests.
    """
    todo = iter(numbers)
    queued = collections.deque(
        pool.submit(fetch, number) for number in itertools.islice(todo, max(1, ahead))
    )
    try:
        while queued:
            page = queued.popleft().result()
            for number in itertools.islice(todo, 1):
                queued.append(pool.submit(fetch, number))
            yield page
    finally:
        for future in queued:
            future.cancel()


def page_limit(first_count: int, page_size: int) -> int:
    """Pages one walk may take: twice what the window had when it began, and then some."""
    return 2 * math.ceil(first_count / page_size) + 5


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception and everything behind it: causes, contexts, urllib3 reasons."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is old for old in seen):
            continue
        seen.append(item)
        yield item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]


def _address(url: str) -> tuple[str, int]:
    parts = parse_url(url)
    return parts.host or "", parts.port or (443 if parts.scheme == "https" else 80)


def _unreachable_cause(exc: BaseException, url: str) -> str | None:
    """Say in words why nothing answered at ``url``, or None if something did."""
    host, port = _address(url)
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return f"nothing listens on {host}:{port} (connection refused)"
        if isinstance(cause, socket.gaierror):
            return f"the host name {host} does not resolve (DNS lookup failed: {cause.strerror})"
    return None


def _tls_cause(exc: BaseException, url: str, timeout: float) -> str:
    """Say in words why the TLS handshake with ``url`` failed."""
    host, port = _address(url)
    reason = next(
        (str(cause) for cause in _causes(exc) if isinstance(cause, ssl.SSLError)), str(exc)
    )
    if "WRONG_VERSION_NUMBER" in reason.upper() and _speaks_plain_http(host, port, timeout):
        return f"the server at {host}:{port} speaks plain HTTP, not HTTPS (use http://)"
    return f"the TLS handshake with {host}:{port} failed ({reason})"


def _speaks_plain_http(host: str, port: int, timeout: float) -> bool:
    # A non-TLS answer to a TLS hello is most often plain HTTP; ask, to say only what is true.
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)) as probe:
            probe.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return probe.recv(5) == b"HTTP/"
    except OSError:
        return False


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


def _escaped_forms(*secrets: str) -> list[str]:
    """Each secret as it reads plain, JSON-escaped, ``repr``-escaped and both; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        # Keys too short to be real (test doubles like "k") would garble every message.
        if len(secret) < MIN_REDACTED_LENGTH:
            continue
        as_repr = repr(secret)[1:-1]
        for as_json in (json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
            forms |= {secret, as_json, as_repr, repr(as_json)[1:-1], json.dumps(as_repr)[1:-1]}
    return sorted(forms, key=len, reverse=True)


def _check_base_url(url: str, allow_insecure_http: bool) -> str:
    """Refuse a base URL that could send the keys somewhere other than it seems to.

    The host is read with urllib3's ``parse_url``, the parser requests itself
    uses, so the check and the connection agree on where the keys go.
    """
    if "\\" in url or any(char.isspace() or not char.isprintable() for char in url):
        raise ConfigError(
            f"base URL {url!r} holds a backslash, a blank or a control character, which "
            "parsers read differently; write the URL plainly, e.g. " + DEFAULT_BASE_URL
        )
    try:
        parts = parse_url(url)
    except LocationParseError as exc:
        raise ConfigError(f"base URL {url!r} cannot be parsed; use {DEFAULT_BASE_URL}") from exc
    if parts.scheme not in ("http", "https") or not parts.host:
        raise ConfigError(
            f"base URL {url!r} is not an http(s) URL; use {DEFAULT_BASE_URL} or the simulator's URL"
        )
    if parts.host.lower() not in url.lower():
        raise ConfigError(
            f"base URL {url!r} spells its host {parts.host!r} in escapes; write the host plainly"
        )
    if parts.auth is not None:
        raise ConfigError(
            f"base URL {url!r} names a user (the part before '@'): the service needs none, and "
            "such URLs can disguise the real host; remove it"
        )
    if parts.query is not None or parts.fragment is not None:
        raise ConfigError(
            f"base URL {url!r} has a query or fragment ('?' or '#'); the endpoint is appended "
            "to the URL's path, so remove them"
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.host):
        raise ConfigError(
            f"refusing plain http:// to {parts.host}: the ApiKey and SecretKey travel in the "
            "request body; use https://, or pass allow_insecure_http=True if you really mean it"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    # Only the canonical spellings: "127.1" or "0x7f000001" may well reach loopback, but
    # a URL spelled so is more likely a trick than a configuration.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False
