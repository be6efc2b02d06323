"""A loopback HTTP proxy that puts faults between a client and a server, on a schedule.

Each connection carries one request (the proxy answers ``Connection: close``).
For every request whose method the test chose, the proxy takes the next fault
from its schedule:

- ``"pass"``: forward the request and relay the answer;
- ``"drop"``: read the request, then close the connection without a word;
- ``"503"``: answer ``503 SlowDown`` as S3 does when throttling;
- ``"stall"``: read the request, pass its head and the first half of its
  body to the server (an upload cut off midway), then hold both connections
  silent until the proxy is closed or :attr:`FaultProxy.stall_seconds` pass.

When the schedule is empty, requests pass. The proxy counts what it saw and
what it injected, so a test can check that every fault was met and retried.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter, deque
from collections.abc import Iterable

SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: 120\r\n\r\n"
    + b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".ljust(
        120
    )
)


class FaultProxy:
    """Listen on 127.0.0.1 and forward to ``127.0.0.1:upstream_port``, with faults."""

    def __init__(self, upstream_port: int, *, stall_seconds: float = 30.0):
        self.upstream_port = upstream_port
        self.stall_seconds = stall_seconds
        self.methods: frozenset[str] = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
        self.schedule: deque[str] = deque()
        self.seen: Counter[str] = Counter()
        #: The request line of every request, in arrival order ("GET /bucket/key?... HTTP/1.1").
        self.requests: list[str] = []
        self.injected: Counter[str] = Counter()
        #: Set while a request is held by a "stall" (a test may act on it then).
        self.stalling = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, faults: Iterable[str], methods: Iterable[str] | None = None) -> None:
        """Queue ``faults`` for the next requests (of ``methods`` only, if given)."""
        with self._lock:
            self.schedule.extend(faults)
            if methods is not None:
                self.methods = frozenset(methods)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _next_fault(self, line: str) -> str:
        method = line.split(" ", 1)[0]
        with self._lock:
            self.seen[method] += 1
            self.requests.append(line)
            if method in self.methods and self.schedule:
                fault = self.schedule.popleft()
                if fault != "pass":
                    self.injected[fault] += 1
                return fault
            return "pass"

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            request = _read_request(connection)
            if request is None:
                return
            fault = self._next_fault(request.split(b"\r\n", 1)[0].decode("latin-1"))
            if fault == "drop":
                connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            elif fault == "503":
                connection.sendall(SLOW_DOWN)
            elif fault == "stall":
                head, _, body = request.partition(b"\r\n\r\n")
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
                    self.stalling.set()
                    self._closed.wait(self.stall_seconds)
                    self.stalling.clear()
            else:
                self._forward(connection, request)

    def _forward(self, connection: socket.socket, request: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            upstream.sendall(request)
            while chunk := upstream.recv(65536):
                connection.sendall(chunk)


def _read_request(connection: socket.socket) -> bytes | None:
    """One whole request, rewritten to ask the server to close after answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
    length = 0
    for line in headers:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        body += chunk
    return b"\r\n".join([lines[0], *headers, b"Connection: close"]) + b"\r\n\r\n" + body
