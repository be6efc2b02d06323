r"""The HTTP face of the simulator: ``POST .../MainService.svc/json/GetSmsSentData_V2``.

Parses requests with its own code (nothing shared with the client), checks
credentials, serves 1-based pages newest first, writes WCF-style JSON (every
``/`` escaped as ``\/``, so ``SentTime`` reads ``"\/Date(...)\/"``) and
injects the faults it is told to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from esms_analytics.simulator.history import TYPE_SHARES, VIETNAM, render_row

if TYPE_CHECKING:
    from esms_analytics.simulator import Simulator

logger = logging.getLogger("esms_analytics.simulator")

SERVICE_PATH = "/MainService.svc/json"
ENDPOINT_PATH = f"{SERVICE_PATH}/GetSmsSentData_V2"
MAX_PAGE_SIZE = 500
#: Marks every answer as simulated (the client's SIMULATOR_HEADER; a test keeps them equal).
SIMULATOR_HEADER = "X-Esms-Simulator"
CODE_MESSAGES = {
    "99": "Unknown error.",
    "102": "Account has no price list.",
    "140": "IP is not in the whitelist.",
    "143": "Account is not activated.",
    "160": "Too many requests.",
}


class EsmsServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its simulator."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator):
        self.simulator = simulator
        super().__init__(address, EsmsHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Say nothing when a client hangs up (a stopped sync does); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class EsmsHandler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive like the real service."""

    protocol_version = "HTTP/1.1"
    server: EsmsServer
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Send the request log to the debug logger instead of stderr."""
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        """Refuse GET, as the service does: the endpoint takes POST."""
        self._send_json(405, {"Message": "Method not allowed. Use POST."})

    def do_POST(self) -> None:
        """Answer one ``GetSmsSentData_V2`` request, or the fault the test asked for."""
        simulator = self.server.simulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != ENDPOINT_PATH:
            self._send_json(404, {"Message": f"Endpoint not found: {self.path}"})
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self._send_json(400, {"Message": "The request body is not valid JSON."})
            return
        faults = simulator.faults
        if faults.latency:
            time.sleep(faults.latency)
        fault = faults.next_fault()
        simulator.record(body, fault)
        if fault == "drop":
            self._drop()
            return
        if fault in ("http500", "http503"):
            status = 500 if fault == "http500" else 503
            self._send(
                status, b"<html><body><h1>Service Unavailable</h1></body></html>", "text/html"
            )
            return
        if fault == "http429":
            self._send(
                429, b"Too Many Requests", "text/plain", {"Retry-After": f"{faults.retry_after:g}"}
            )
            return
        if fault == "malformed":
            self._send(
                200,
                b"<html><head><title>Runtime Error</title></head></html>",
                "application/json; charset=utf-8",
            )
            return
        if fault is not None and fault.startswith("code"):
            code = fault.removeprefix("code").removeprefix(":")
            message = CODE_MESSAGES.get(code, f"Error {code}.")
            self._send_json(200, {"CodeResult": code, "ErrorMessage": message})
            return
        payload = simulator.answer_body(body)
        if fault == "slow":
            time.sleep(faults.slow_seconds)
        self._send(200, payload, "application/json; charset=utf-8", truncate=fault == "truncate")

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, wcf_json(payload), "application/json; charset=utf-8")

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        truncate: bool = False,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header(SIMULATOR_HEADER, "1")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if truncate else payload)
            self.wfile.flush()
            if truncate:
                self._drop()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a slow fault past its timeout): nothing to answer.
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def wcf_json(payload: dict[str, Any]) -> bytes:
    r"""Serialise ``payload`` as eSMS's WCF service does.

    WCF's DataContractJsonSerializer escapes every solidus: ``\/Date(...)\/``.
    """
    return json.dumps(payload, ensure_ascii=False).replace("/", "\\/").encode("utf-8")


def parse_request(body: dict[str, Any]) -> tuple[int, int, int, int, int] | dict[str, Any]:
    """(sms_type, start_ms, end_ms, page, page_size), or the error answer to send."""
    try:
        sms_type = int(str(body.get("SmsType", "")).strip())
    except ValueError:
        return {"CodeResult": "118", "ErrorMessage": "SmsType is invalid."}
    if sms_type not in TYPE_SHARES:
        return {"CodeResult": "118", "ErrorMessage": f"SmsType {sms_type} is not supported."}
    try:
        start = datetime.strptime(str(body.get("From")), "%Y-%m-%d %H:%M:%S")
        end = datetime.strptime(str(body.get("To")), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return {"CodeResult": "99", "ErrorMessage": "From/To must be yyyy-MM-dd HH:mm:ss."}
    try:
        page = int(str(body.get("Page", "1")).strip())
        page_size = int(str(body.get("PageSize", "500")).strip())
    except ValueError:
        return {"CodeResult": "99", "ErrorMessage": "Page and PageSize must be numbers."}
    if page < 1:
        return {"CodeResult": "99", "ErrorMessage": "Page starts at 1."}
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        return {"CodeResult": "99", "ErrorMessage": "PageSize must be between 1 and 500."}
    # Both ends inclusive to the second, Vietnam local time.
    start_ms = int(start.replace(tzinfo=VIETNAM).timestamp() * 1000)
    end_ms = int(end.replace(tzinfo=VIETNAM).timestamp() * 1000) + 999
    return sms_type, start_ms, end_ms, page, page_size


def page_answer(
    simulator: Simulator, sms_type: int, start_ms: int, end_ms: int, page: int, page_size: int
) -> dict[str, Any]:
    """Build the body for one valid request: rows newest first, 1-based page."""
    now_ms = simulator.clock.now_ms()
    slices = simulator.history.visible(sms_type, start_ms, end_ms, now_ms)
    total = sum(hi - lo for _, lo, hi in slices)
    if total == 0:
        return {"CodeResult": "105", "ErrorMessage": "Không có dữ liệu (no data)."}
    skip, rows = (page - 1) * page_size, list[dict[str, Any]]()
    for messages, lo, hi in slices:
        count = hi - lo
        if skip >= count:
            skip -= count
            continue
        top = hi - 1 - skip
        skip = 0
        while top >= lo and len(rows) < page_size:
            rows.append(render_row(messages[top], now_ms))
            top -= 1
        if len(rows) == page_size:
            break
    return {"CodeResult": "100", "CountTotal": total, "SentData": rows}


def serve_in_thread(server: EsmsServer) -> threading.Thread:
    """Serve ``server`` from a daemon thread."""
    # A short poll interval makes shutdown() prompt: tests start hundreds of servers.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="esms-simulator",
        daemon=True,
    )
    thread.start()
    return thread
