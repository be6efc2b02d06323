"""A hostile stand-in for eSMS: a loopback HTTP server whose answer per request the test sets.

The simulator plays an honest service with honest faults; this server plays a
broken or malicious one. A test sets ``server.respond`` (a function of the
request's JSON body returning an :class:`Answer`) or queues answers with
``server.queue``; every request is recorded, so a test can also ask whether
the keys ever reached a server (``server.received_keys``), which is how the
redirect tests watch a second server on another port.

Answers cover what a server can do to a client: any status and header
(redirects, ``Retry-After``), any body, and bodies written in chunks with a
pause between them, endlessly if the chunks never end (a trickle, or a flood).
A body of chunks stops when the client hangs up, when the server closes, or
after :data:`MAX_STREAM_SECONDS`, so a client that does not defend itself
fails the test instead of hanging it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from esms_analytics.client import EsmsClient, RetryPolicy

API_KEY = "APIKEY-hostile-7f3a9c"
SECRET_KEY = "SECRET-hostile-b81d22"
#: How long a body of endless chunks runs at most: a safety net for a client that never stops.
MAX_STREAM_SECONDS = 20.0


@dataclass(frozen=True)
class Answer:
    """What the server sends for one request.

    ``chunks`` replaces ``body`` with pieces written one at a time, ``pause``
    seconds apart; ``length`` is the ``Content-Length`` to declare (None: the
    body ends when the connection closes).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None
    pause: float = 0.0
    length: int | None = -1

    def declared_length(self) -> int | None:
        """The Content-Length header's value, or None for none."""
        if self.length == -1:
            return len(self.body) if self.chunks is None else None
        return self.length


def envelope(
    rows: list[dict[str, Any]] | None = None,
    *,
    count_total: object = None,
    code: object = "100",
    error_message: str = "",
    raw: str | None = None,
) -> Answer:
    """An answer in eSMS's envelope; ``count_total`` defaults to the number of rows.

    ``raw`` is spliced in as JSON text instead of the rows (for tokens such as
    ``NaN`` that a test wants on the wire verbatim).
    """
    payload = {
        "CodeResult": code,
        "CountTotal": len(rows or []) if count_total is None else count_total,
        "ErrorMessage": error_message,
        "SentData": rows or [],
    }
    text = json.dumps(payload, ensure_ascii=False)
    if raw is not None:
        text = text.replace('"SentData": []', f'"SentData": {raw}')
    return Answer(body=text.encode("utf-8"))


def no_data() -> Answer:
    """CodeResult 105, eSMS's "no data" for a window."""
    return envelope(code="105", error_message="No data.")


def row(sent: datetime, number: int = 1, *, sms_type: int = 2, **fields: Any) -> dict[str, Any]:
    """A valid ``SentData`` row sent at ``sent`` (tz-aware); ``fields`` override any field."""
    millis = int(sent.timestamp() * 1000)
    return {
        "SmsId": 1000 + number,
        "ReferenceId": f"ref-{number:06d}",
        "Campaign": "hostile",
        "Content": "Cam on quy khach",
        "Phone": "0901888484",
        "SellPrice": 345.0,
        "SmsType": sms_type,
        "SendStatus": 5,
        "SendResult": 1,
        "SentTime": f"/Date({millis}+0700)/",
        **fields,
    }


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    text: str

    def json(self) -> dict[str, Any]:
        """The request body parsed (empty for a body-less request)."""
        return dict(json.loads(self.text)) if self.text else {}


class HostileServer:
    """A loopback HTTP server in a thread; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.respond: Callable[[dict[str, Any]], Answer] = lambda body: no_data()
        self.stopping = threading.Event()
        self._queued: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.hostile = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """A base URL for EsmsClient pointing at this server."""
        return f"http://127.0.0.1:{self.port}/MainService.svc/json"

    @property
    def received_keys(self) -> bool:
        """Whether any request carried the ApiKey or the SecretKey anywhere."""
        return any(
            secret in f"{seen.path} {seen.headers} {seen.text}"
            for seen in self.requests
            for secret in (API_KEY, SECRET_KEY)
        )

    def pages(self) -> list[int]:
        """The ``Page`` of each request received, in order."""
        return [int(seen.json().get("Page", 0)) for seen in self.requests]

    def queue(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, then go back to ``respond``."""
        self._queued.extend(answers)

    def client(self, **options: Any) -> EsmsClient:
        """A client with the hostile keys, two attempts and no real sleeping."""
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "sleep": lambda seconds: None,
            "retry": RetryPolicy(max_attempts=2),
            "timeout": 5.0,
            "rate_limit": None,
            **options,
        }
        return EsmsClient(API_KEY, SECRET_KEY, **settings)

    def answer(self, received: Received) -> Answer:
        """Record a request and choose its answer."""
        with self._lock:
            self.requests.append(received)
            if self._queued:
                return self._queued.popleft()
        return self.respond(received.json() if received.method == "POST" else {})

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        hostile: HostileServer = self.server.hostile  # type: ignore[attr-defined]
        size = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(size).decode("utf-8", "replace") if size else ""
        answer = hostile.answer(Received(self.command, self.path, dict(self.headers.items()), text))
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if (length := answer.declared_length()) is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            self._write(answer, hostile.stopping)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as a careful client does on a hostile body
        self.close_connection = True

    def _write(self, answer: Answer, stopping: threading.Event) -> None:
        if answer.chunks is None:
            self.wfile.write(answer.body)
            return
        started = time.monotonic()
        for chunk in answer.chunks:
            if stopping.is_set() or time.monotonic() - started > MAX_STREAM_SECONDS:
                return
            self.wfile.write(chunk)
            self.wfile.flush()
            if answer.pause:
                time.sleep(answer.pause)

    do_POST = do_GET = do_PUT = _serve  # noqa: N815 (the names http.server calls)


def endless(chunk: bytes) -> Iterator[bytes]:
    """The same chunk for ever (until the client or the server stops)."""
    return itertools.repeat(chunk)
