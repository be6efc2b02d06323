"""Sync under latency, and a sync's CPU (peak memory: :mod:`benchmarks.bench_memory`).

The simulator runs in its own process (as the real service would), with
``latency`` seconds added to every request; the client syncs in this process.
The ideal wall time is requests x latency / workers. :func:`run_cpu` sets a
sync's CPU seconds beside a plain ``requests`` loop over the same pages.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import in_subprocess
from esms_analytics.client import EsmsClient
from esms_analytics.lake import read_lake
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=VIETNAM)
SERVER = """
import sys
from datetime import datetime
from esms_analytics.simulator import Faults, Simulator
from esms_analytics.simulator.history import VIETNAM
rows, latency, every_type = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
now = datetime(2026, 11, 20, 12, 0, tzinfo=VIETNAM)
simulator = Simulator(now=now, days=1200, counts=lambda t, d: rows if every_type or t == 2 else 0,
                      faults=Faults(latency=latency))
print(simulator.base_url, flush=True)
simulator.serve_forever()
"""


@contextmanager
def simulator_process(
    rows_per_day: int, latency: float, *, every_type: bool = False
) -> Iterator[str]:
    """A simulator in a child process; yields its base URL.

    ``rows_per_day`` rows of SmsType 2 a day, or of every type with ``every_type``.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(rows_per_day), str(latency), str(int(every_type))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _client(base_url: str) -> EsmsClient:
    return EsmsClient(
        "sim-api-key", "sim-secret-key", base_url=base_url, rate_limit=None, timeout=60
    )


def one_sync(base_url: str, days: int, workers: int) -> tuple[float, int, int, int]:
    """(seconds, requests, rows, response bytes) of one sync into a fresh lake."""
    with tempfile.TemporaryDirectory() as scratch, _client(base_url) as client:
        received = [0]
        original = client._read_body

        # The client streams each body against its size cap: count what that read returns.
        def counting_read(*args: Any, **kwargs: Any) -> Any:
            body = original(*args, **kwargs)
            received[0] += len(body) if isinstance(body, bytes) else 0
            return body

        client._read_body = counting_read  # type: ignore[method-assign]
        start = time.perf_counter()
        report = sync(
            Path(scratch) / "lake",
            NOW.date() - timedelta(days=days),
            NOW.date() - timedelta(days=1),
            sms_types=[2],
            client=client,
            workers=workers,
            progress=False,
            now=NOW,
            probes=False,  # the windows of the plain loop, no more (probes: bench_requests)
        )
        elapsed = time.perf_counter() - start
        assert report.complete
        lake_bytes = sum(f.stat().st_size for f in (Path(scratch) / "lake").rglob("*.parquet"))
        rows = read_lake(Path(scratch) / "lake").collect().height
        assert rows == report.rows
        one_sync.lake_bytes = lake_bytes  # type: ignore[attr-defined]
        return elapsed, report.requests, rows, received[0]


def run_latency(
    days: int = 30,
    rows_per_day: int = 5000,
    latency: float = 0.1,
    workers: tuple[int, ...] = (1, 4, 8),
    repeats: int = 5,
) -> dict[str, Any]:
    results = []
    with simulator_process(rows_per_day, latency) as base_url:
        one_sync(base_url, days, max(workers))  # the simulator renders each page once
        for count in workers:
            runs = [one_sync(base_url, days, count) for _ in range(repeats)]
            seconds = sorted(run[0] for run in runs)
            requests_made = runs[0][1]
            ideal = requests_made * latency / count
            results.append(
                {
                    "workers": count,
                    "runs": seconds,
                    "median": seconds[len(seconds) // 2],
                    "requests": requests_made,
                    "ideal": ideal,
                    "ratio": seconds[len(seconds) // 2] / ideal,
                }
            )
        rows, json_bytes = runs[0][2], runs[0][3]
    return {
        "days": days,
        "rows_per_day": rows_per_day,
        "latency": latency,
        "results": results,
        "rows": rows,
        "json_bytes": json_bytes,
        "lake_bytes": one_sync.lake_bytes,
    }  # type: ignore[attr-defined]


#: The client side of a CPU measurement, for a fresh interpreter: the pages, a timed run
#: (``cpu``), a one-worker sync into a fresh lake (``full_sync``), interleaved runs
#: (``interleaved``) and the step wrappers of a split (``wrap_steps``, ``splits``). A
#: script appends its own actions to it: :data:`CPU` here, ``bench_privacy``'s.
CPU_HARNESS = """
import importlib, json, math, sys, tempfile, time
from datetime import datetime, timedelta
from pathlib import Path
from esms_analytics.client import EsmsClient, Window
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync
base_url, days, rows_per_day, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
now = datetime(2026, 11, 20, 12, 0, tzinfo=VIETNAM)
first = now.date() - timedelta(days=days)
day_list = [first + timedelta(days=n) for n in range(days)]
pages = math.ceil(rows_per_day / 500)
def client():
    return EsmsClient("sim-api-key", "sim-secret-key", base_url=base_url, rate_limit=None,
                      timeout=60)
def full_sync(privacy=None, inspect=None):
    # inspect(lake), when given, looks at the lake before it is deleted (outside any timing
    # that matters: warm-up runs only).
    with tempfile.TemporaryDirectory() as scratch, client() as esms:
        report = sync(Path(scratch) / "lake", day_list[0], day_list[-1], sms_types=[2],
                      client=esms, workers=1, progress=False, now=now, probes=False,
                      privacy=privacy)
        assert report.complete and report.requests == pages * days, report.summary()
        if inspect is not None:
            inspect(Path(scratch) / "lake")
        return report.rows
def cpu(action):
    # CPU seconds of this process (every thread), and the wall time, of one run.
    wall, start = time.perf_counter(), time.process_time()
    result = action()
    return time.process_time() - start, time.perf_counter() - wall, result
def interleaved(actions):
    # Each action once per round, `repeats` rounds: all meet the same passing load.
    runs, results = {name: [] for name in actions}, {}
    for _ in range(repeats):
        for name, action in actions.items():
            seconds, wall, result = cpu(action)
            runs[name].append([seconds, wall])
            results[name] = result
    return runs, results
# Where a sync's CPU goes: the same sync, each step's CPU summed by a wrapper around it
# (after the measured runs, which run unwrapped). A step another version no longer has is
# left out; what no wrapper caught is reported as the rest.
spent = {}
def wrapped(step, function):
    def measured(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[step] = spent.get(step, 0.0) + time.process_time() - start
    return measured
STEPS = (("HTTP exchange (client, less parsing)", "esms_analytics.client", "EsmsClient._attempt"),
         ("parse bodies (pl.read_json)", "esms_analytics.client", "parse_envelope"),
         ("dedupe and sort", "polars", "DataFrame.unique"),
         ("dedupe and sort", "polars", "DataFrame.sort"),
         ("decode", "esms_analytics.windows", "decode_raw"),
         ("number copies, check rows", "esms_analytics.windows", "_number_copies"),
         ("number copies, check rows", "esms_analytics.windows", "_check_rows"),
         ("Parquet encode (write_table)", "esms_analytics.lake", "_write_parquet"),
         ("Arrow conversion", "esms_analytics.lake", "_to_arrow"),
         ("partition write, rest (checks, quarantine, fsync)", "esms_analytics.sync", "write_partition"),
         ("manifest", "esms_analytics.manifest", "Manifest.record"),
         ("manifest", "esms_analytics.manifest", "Manifest.compact"))
def wrap_steps(steps):
    for step, module_name, attribute in steps:
        owner = importlib.import_module(module_name)
        *outer, name = attribute.split(".")
        for part in outer:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            setattr(owner, name, wrapped(step, getattr(owner, name)))
def splits(actions):
    # Each action `repeats` times, interleaved, with the wrappers on: its steps and total.
    split = {name: [] for name in actions}
    for _ in range(repeats):
        for name, action in actions.items():
            spent.clear()
            total, _, _ = cpu(action)
            split[name].append({**spent, "total": total})
    return split
"""

CPU = (
    CPU_HARNESS
    + """
import orjson, requests
from esms_analytics.windows import fetch_window
def plain_loop(parse=None):
    # What any client must do at the least: one POST per page, the body read whole.
    received = 0
    with requests.Session() as session:
        for day in day_list:
            for page in range(1, pages + 1):
                body = {"ApiKey": "sim-api-key", "SecretKey": "sim-secret-key", "SmsType": "2",
                        **Window.for_day(day).params(), "Page": page, "PageSize": 500}
                response = session.post(base_url + "/GetSmsSentData_V2", json=body, timeout=60)
                received += len(response.content)
                if parse is not None:
                    parse(response.content)
    return received
def parsing_loop():
    # The same, and each body parsed to Python objects: the least a client that looks
    # at the rows must add.
    return plain_loop(orjson.loads)
def fetch_only():
    with client() as esms:
        return sum(fetch_window(esms, 2, Window.for_day(day)).frame.height for day in day_list)
ACTIONS = {"plain requests loop": plain_loop, "plain loop + orjson.loads": parsing_loop,
           "fetch_window (client + decode)": fetch_only,
           "sync (fetch + Parquet + manifest)": full_sync}
for action in ACTIONS.values():
    action()  # warm-up: imports, connections, and the simulator renders each page once
runs, results = interleaved(ACTIONS)
wrap_steps(STEPS)
split = splits({"sync": full_sync})["sync"]
print(json.dumps({"runs": runs, "bytes": results["plain requests loop"], "split": split,
                  "rows": results["sync (fetch + Parquet + manifest)"], "pages": pages * days}))
"""
)


def measure_cpu(script: str, days: int, rows_per_day: int, repeats: int) -> dict[str, Any]:
    """Run ``script`` (:data:`CPU_HARNESS` and its actions) against a simulator of its own.

    The simulator serves ``rows_per_day`` rows of SmsType 2 a day from its own
    process and the script runs in a fresh one, so ``time.process_time()``
    there counts the client's CPU only (every thread of it). Returns the JSON
    object the script prints.
    """
    with simulator_process(rows_per_day, 0.0) as base_url:
        return in_subprocess(script, base_url, str(days), str(rows_per_day), str(repeats))


def medians_per_100k(
    runs: dict[str, list[list[float]]], per_100k: float
) -> dict[str, dict[str, float]]:
    """Each action's median CPU and wall seconds (``[cpu, wall]`` runs), per 100,000 rows."""
    return {
        name: {
            "cpu_s": sorted(run[0] for run in each)[len(each) // 2] * per_100k,
            "wall_s": sorted(run[1] for run in each)[len(each) // 2] * per_100k,
        }
        for name, each in runs.items()
    }


def run_cpu(days: int = 20, rows_per_day: int = 5000, repeats: int = 3) -> dict[str, Any]:
    """CPU seconds of a sync against a plain ``requests`` loop over the same pages.

    The simulator serves from its own process and the client side runs in a
    fresh one (:func:`measure_cpu`). Medians of ``repeats`` interleaved runs.
    Beside them, the same loop parsing each body with ``orjson``, and
    ``split``: where a sync's CPU goes, step by step (:func:`split_steps`).
    """
    measured = measure_cpu(CPU, days, rows_per_day, repeats)
    per_100k = 100_000 / measured["rows"]
    medians = medians_per_100k(measured["runs"], per_100k)
    plain = medians["plain requests loop"]["cpu_s"]
    return {
        "split": split_steps(measured["split"], per_100k),
        "days": days,
        "rows_per_day": rows_per_day,
        "rows": measured["rows"],
        "pages": measured["pages"],
        "bytes": measured["bytes"],
        "repeats": repeats,
        "per_100k": medians,
        "sync_ratio": medians["sync (fetch + Parquet + manifest)"]["cpu_s"] / plain,
        "fetch_ratio": medians["fetch_window (client + decode)"]["cpu_s"] / plain,
        "parsing_ratio": medians["sync (fetch + Parquet + manifest)"]["cpu_s"]
        / medians["plain loop + orjson.loads"]["cpu_s"],
    }


#: Steps of the split that run inside another: (outer, its inner steps).
NESTED_STEPS: dict[str, tuple[str, ...]] = {
    "HTTP exchange (client, less parsing)": ("parse bodies (pl.read_json)",),
    "partition write, rest (checks, quarantine, fsync)": (
        "Parquet encode (write_table)",
        "Arrow conversion",
    ),
}


def split_steps(
    runs: list[dict[str, float]],
    per_100k: float,
    nested: dict[str, tuple[str, ...]] = NESTED_STEPS,
) -> dict[str, float]:
    """A sync's CPU per step, per 100,000 rows, from the run of median total.

    A step wrapped inside another (``nested``: the Parquet encode inside the
    partition write) is taken out of the outer one, so the steps add up to the
    total.
    """
    run = sorted(runs, key=lambda each: each["total"])[len(runs) // 2]
    steps = {name: seconds for name, seconds in run.items() if name != "total"}
    for outer, inner in nested.items():
        if outer in steps:
            steps[outer] -= sum(steps.get(name, 0.0) for name in inner)
    steps["the rest (pager, window and sync bookkeeping)"] = run["total"] - sum(steps.values())
    return {name: seconds * per_100k for name, seconds in steps.items()}


FIRST_SYNC = """
import json, sys, tempfile, time
from datetime import datetime, timedelta
from pathlib import Path
from esms_analytics.client import EsmsClient
from esms_analytics.simulator.history import VIETNAM
from esms_analytics.sync import sync
base_url, days = sys.argv[1], int(sys.argv[2])
now = datetime(2026, 11, 20, 12, 0, tzinfo=VIETNAM)
starts = []
with tempfile.TemporaryDirectory() as scratch, EsmsClient(
        "sim-api-key", "sim-secret-key", base_url=base_url, rate_limit=None, timeout=60) as client:
    original = client._session.post
    def timed_post(*args, **kwargs):
        starts.append(time.perf_counter())
        return original(*args, **kwargs)
    client._session.post = timed_post
    report = sync(Path(scratch) / "lake", now.date() - timedelta(days=days),
                  now.date() - timedelta(days=1), client=client, workers=1, progress=False,
                  now=now, probes=False)  # the cost of a window; probes: bench_requests
    starts.append(time.perf_counter())
    assert report.complete, report.summary()
    assert report.requests == len(report.windows), "one page per window expected"
    manifest = (Path(scratch) / "lake" / "_manifest.json").stat().st_size
print(json.dumps({"windows": len(report.windows), "rows": report.rows, "starts": starts,
                  "manifest_bytes": manifest}))
"""


def run_first_sync(days: int = 1095, rows_per_window: int = 3) -> dict[str, Any]:
    """A first sync of ``days`` days x every type at low volume: cost per window as it goes.

    One worker and one page per window, so the time from one request to the next
    is what one window costs (request, decode, Parquet file, manifest); the
    first and last 10% of windows are compared.
    """
    with simulator_process(rows_per_window, 0.0, every_type=True) as base_url:
        measured = in_subprocess(FIRST_SYNC, base_url, str(days))
    starts = measured["starts"]
    costs = [later - earlier for earlier, later in itertools.pairwise(starts)]
    tenth = max(1, len(costs) // 10)
    first, last = sorted(costs[:tenth]), sorted(costs[-tenth:])
    return {
        "days": days,
        "windows": measured["windows"],
        "rows": measured["rows"],
        "seconds": starts[-1] - starts[0],
        "first_ms": 1000 * first[len(first) // 2],
        "last_ms": 1000 * last[len(last) // 2],
        "first_mean_ms": 1000 * sum(first) / len(first),
        "last_mean_ms": 1000 * sum(last) / len(last),
        "manifest_mb": measured["manifest_bytes"] / 1e6,
    }
