"""Timing, memory and machine facts shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any


@dataclass
class Timing:
    """Seconds of each run of one measured thing."""

    name: str
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def time_runs(name: str, action: Callable[[], object], repeats: int, warmup: bool = True) -> Timing:
    """Run ``action`` ``repeats`` times (after one unmeasured warm-up) and keep each time."""
    if warmup:
        action()
    timing = Timing(name)
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timing.runs.append(time.perf_counter() - start)
    return timing


def time_interleaved(actions: dict[str, Callable[[], object]], repeats: int) -> list[Timing]:
    """Time each action once per round, ``repeats`` rounds after one warm-up round.

    Interleaving puts every action under the same passing load of a shared machine,
    which matters for calls of a millisecond, where one busy moment is the whole call.
    """
    timings = {name: Timing(name) for name in actions}
    for round_number in range(repeats + 1):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            if round_number:
                timings[name].runs.append(time.perf_counter() - start)
    return list(timings.values())


def verdict(met: bool) -> str:
    """How BENCHMARKS.md states a target: met or missed, in bold (the smoke test counts them)."""
    return "**met**" if met else "**missed**"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    VmHWM, not ``ru_maxrss``: Linux carries a parent's ``ru_maxrss`` into a child
    forked from it, so every child would report at least the runner's own peak.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        return float(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024


def in_subprocess(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    versions = {
        name: metadata.version(name)
        for name in ("polars", "pyarrow", "duckdb", "pandas", "orjson", "requests")
    }
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gb": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f}",
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }
