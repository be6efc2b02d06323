"""Faults the simulator can inject, and the clock it serves history against.

Faults come two ways, both thread-safe: a *script* (the next requests fail in
this order, exactly; what tests use) and *rates* (each request fails with a
probability, from a seeded generator; what soak runs and the CLI use).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from esms_analytics.simulator.history import VIETNAM

FAULT_KINDS: tuple[str, ...] = (
    "http500",  # HTTP 500 with an HTML body
    "http503",  # HTTP 503
    "http429",  # HTTP 429 with Retry-After
    "slow",  # answer only after slow_seconds (past a client's timeout)
    "drop",  # close the connection without answering
    "truncate",  # send half the body, then close
    "malformed",  # HTTP 200 with a body that is not JSON
    "code99",  # CodeResult 99, unknown error
    "code160",  # CodeResult 160, too many requests
)
# Besides these, "code:NNN" answers CodeResult NNN (any code, e.g. 140 or one eSMS adds later).


@dataclass
class Faults:
    """What goes wrong, and how slow the service is.

    Attributes
    ----------
    latency : float
        Seconds added to every request.
    slow_seconds : float
        How long a ``slow`` fault stalls before answering.
    retry_after : float
        The ``Retry-After`` seconds sent with ``http429``.
    arrivals_per_request : int
        New messages created in the requested type at the current clock time
        before each request is answered (rows arriving while a client pages).
    arrival_requests : int or None
        How many requests get arrivals; None for all.
    max_span_days : int or None
        Refuse a From/To range longer than this many days with CodeResult
        ``span_code`` (a code no client foresees), as a service with a span cap would.
    """

    latency: float = 0.0
    slow_seconds: float = 3.0
    retry_after: float = 1.0
    arrivals_per_request: int = 0
    arrival_requests: int | None = None
    max_span_days: int | None = None
    span_code: str = "177"
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    _script: deque[str] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)
        for kind in self.rates:
            _check_kind(kind)

    def queue(self, *kinds: str) -> None:
        """Make the next requests fail with ``kinds``, in order (``"ok"`` lets one pass)."""
        for kind in kinds:
            if kind != "ok":
                _check_kind(kind)
        with self._lock:
            self._script.extend(kinds)

    def set_rate(self, kind: str, probability: float) -> None:
        """Fail each request with ``kind`` with this probability (0 turns it off)."""
        _check_kind(kind)
        if not 0 <= probability <= 1:
            raise ValueError(f"probability must be between 0 and 1, got {probability}")
        with self._lock:
            self.rates[kind] = probability

    def next_fault(self) -> str | None:
        """Draw the fault for the request being served, if any."""
        with self._lock:
            if self._script:
                kind = self._script.popleft()
                return None if kind == "ok" else kind
            for kind, probability in self.rates.items():
                if probability and self._rng.random() < probability:
                    return kind
        return None

    def take_arrivals(self) -> int:
        """How many messages arrive before this request is answered."""
        with self._lock:
            if not self.arrivals_per_request:
                return 0
            if self.arrival_requests is not None:
                if self.arrival_requests <= 0:
                    return 0
                self.arrival_requests -= 1
            return self.arrivals_per_request


def _check_kind(kind: str) -> None:
    if kind.startswith("code:") and kind[5:].isdigit():
        return
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(FAULT_KINDS)}")


class SimClock:
    """The simulator's "now", in Vietnam time.

    Frozen at ``start`` (tests move it by hand), or running: it then ticks
    with the wall clock from ``start`` onwards.
    """

    def __init__(self, start: datetime | None = None, *, running: bool | None = None):
        self._running = start is None if running is None else running
        self._start = (start or datetime.now(VIETNAM)).astimezone(VIETNAM)
        self._origin = time.monotonic()
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        """True when the clock only moves when told to."""
        return not self._running

    def now(self) -> datetime:
        """Return the current simulated moment."""
        with self._lock:
            if self._running:
                return self._start + timedelta(seconds=time.monotonic() - self._origin)
            return self._start

    def now_ms(self) -> int:
        """Return the current simulated moment in Unix milliseconds."""
        return int(self.now().timestamp() * 1000)

    def today(self) -> date:
        """Return the current simulated day in Vietnam."""
        return self.now().date()

    def set(self, moment: datetime) -> None:
        """Jump to ``moment``."""
        with self._lock:
            self._start = moment.astimezone(VIETNAM)
            self._origin = time.monotonic()

    def advance(self, delta: timedelta) -> None:
        """Move forward by ``delta`` (days, hours: statuses settle meanwhile)."""
        self.set(self.now() + delta)
