"""A faithful eSMS simulator: a real HTTP server speaking ``GetSmsSentData_V2``.

It is the embedded default for the demo, the notebooks, the tests and the
benchmarks, and a stand-in for eSMS when you build a pipeline offline.

>>> from esms_analytics.simulator import Simulator
>>> with Simulator(daily_volume=30, days=2) as sim:
...     sim.base_url.startswith("http://127.0.0.1:")
True

From a shell: ``esms-analytics simulate --port 8765`` (see ``--help`` for the
fault knobs). The server accepts any client; the credentials it expects are
``sim.api_key`` / ``sim.secret_key`` (``sim-api-key`` / ``sim-secret-key`` by
default), anything else gets CodeResult 101.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any

from esms_analytics.client import EsmsClient
from esms_analytics.simulator.faults import FAULT_KINDS, Faults, SimClock
from esms_analytics.simulator.history import History
from esms_analytics.simulator.server import (
    SERVICE_PATH,
    EsmsServer,
    page_answer,
    parse_request,
    serve_in_thread,
    wcf_json,
)

__all__ = ["FAULT_KINDS", "Faults", "SimClock", "Simulator"]

DEFAULT_API_KEY = "sim-api-key"
DEFAULT_SECRET_KEY = "sim-secret-key"
#: Rendered pages kept for a frozen clock (about 200 KB each at 500 rows).
PAGE_CACHE_SIZE = 2000


class Simulator:
    """An eSMS service on loopback, with a seeded history and injectable faults.

    Parameters
    ----------
    now : datetime, optional
        Freeze the simulator clock at this moment (Vietnam time if naive).
        By default the clock runs with the wall clock.
    days : int
        Days of history before today (today itself fills up as the clock runs).
    daily_volume : int
        Average rows a day over all message types.
    counts : callable, optional
        ``counts(sms_type, day) -> rows``: exact volumes, for tests.
    seed : int
        The same seed gives the same history.
    faults : Faults, optional
        Faults to inject; change ``sim.faults`` at any time.
    string_numbers, legacy_dates : float
        Shares of rows sending numbers as strings, and old-style SentTime.
    host, port : str, int
        Where to listen; port 0 picks a free one.
    """

    def __init__(
        self,
        *,
        now: datetime | None = None,
        days: int = 90,
        daily_volume: int = 300,
        counts: Callable[[int, date], int] | None = None,
        seed: int = 7,
        faults: Faults | None = None,
        string_numbers: float = 0.05,
        legacy_dates: float = 0.0,
        api_key: str = DEFAULT_API_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        if now is not None and now.tzinfo is None:
            from esms_analytics.simulator.history import VIETNAM

            now = now.replace(tzinfo=VIETNAM)
        self.clock = SimClock(now)
        today = self.clock.today()
        self.history = History(
            seed=seed,
            first_day=today - timedelta(days=days),
            last_day=today + timedelta(days=3660),
            daily_volume=daily_volume,
            counts=counts,
            string_numbers=string_numbers,
            legacy_dates=legacy_dates,
        )
        self.faults = faults or Faults()
        self.api_key = api_key
        self.secret_key = secret_key
        self.requests: list[dict[str, Any]] = []
        self._requests_lock = threading.Lock()
        self._page_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._server = EsmsServer((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The URL to give a client: ``http://127.0.0.1:PORT/MainService.svc/json``.

        Listening on every interface (``0.0.0.0``), the simulator is reached on this
        machine at 127.0.0.1: a URL a client accepts, unlike ``http://0.0.0.0``.
        """
        host, port = self._server.server_address[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"http://{host!s}:{port}{SERVICE_PATH}"

    @property
    def today(self) -> date:
        """The simulator clock's current day."""
        return self.clock.today()

    def start(self) -> Simulator:
        """Start serving from a background thread."""
        if self._thread is None:
            self._thread = serve_in_thread(self._server)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the CLI's ``simulate``)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, **options: Any) -> EsmsClient:
        """Make an :class:`EsmsClient` with this simulator's URL and credentials."""
        options.setdefault("rate_limit", None)
        return EsmsClient(self.api_key, self.secret_key, base_url=self.base_url, **options)

    # -- serving ------------------------------------------------------------

    def record(self, body: dict[str, Any], fault: str | None) -> None:
        """Keep what was asked (without the credentials) for tests to count."""
        entry = {key: value for key, value in body.items() if key not in ("ApiKey", "SecretKey")}
        entry["fault"] = fault
        with self._requests_lock:
            self.requests.append(entry)

    def reset_requests(self) -> None:
        """Forget the recorded requests."""
        with self._requests_lock:
            self.requests.clear()

    def answer_body(self, body: dict[str, Any]) -> bytes:
        """Answer a well-formed request body.

        With a frozen clock the same request always gets the same page, so
        rendered pages are kept (up to :data:`PAGE_CACHE_SIZE`): the simulator
        then costs little more than its latency, like a fast remote service.
        """
        if not self.clock.frozen:
            return wcf_json(self.answer(body))
        key = (
            json.dumps(body, sort_keys=True, default=str),
            self.clock.now_ms(),
            self.history.version,
            self.faults.arrivals_per_request,
        )
        with self._cache_lock:
            cached = self._page_cache.get(key)
            if cached is not None:
                self._page_cache.move_to_end(key)
                return cached
        payload = wcf_json(self.answer(body))
        if not self.faults.arrivals_per_request:
            with self._cache_lock:
                self._page_cache[key] = payload
                while len(self._page_cache) > PAGE_CACHE_SIZE:
                    self._page_cache.popitem(last=False)
        return payload

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a well-formed request body."""
        if body.get("ApiKey") != self.api_key or body.get("SecretKey") != self.secret_key:
            return {"CodeResult": "101", "ErrorMessage": "Authorize Failed."}
        parsed = parse_request(body)
        if isinstance(parsed, dict):
            return parsed
        sms_type, start_ms, end_ms, page, page_size = parsed
        span = self.faults.max_span_days
        if span is not None and end_ms - start_ms >= span * 86_400_000:
            return {
                "CodeResult": self.faults.span_code,
                "ErrorMessage": f"From-To may span at most {span} days.",
            }
        arrivals = self.faults.take_arrivals()
        if arrivals:
            now_ms = self.clock.now_ms()
            if start_ms <= now_ms <= end_ms:
                self.history.add_arrivals(sms_type, now_ms, arrivals)
        return page_answer(self, sms_type, start_ms, end_ms, page, page_size)
