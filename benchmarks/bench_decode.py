"""Decode: rows a second from page JSON bytes (as the service sends them) to a typed frame.

Baselines in the same run, on the same bytes: stdlib ``json.loads`` alone,
``orjson.loads`` alone (the floor for any decoder: it only parses), and a
naive pandas pipeline (json, DataFrame, a per-row datetime parse).

:func:`run_single_page` times one page at a time (1 and 500 rows), which is
what a sync of small windows pays: there a decode's fixed cost is the cost.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import polars as pl

from benchmarks.common import Timing, time_interleaved, time_runs
from esms_analytics.decode import decode_raw
from esms_analytics.simulator.history import History, render_row
from esms_analytics.simulator.server import wcf_json
from esms_analytics.windows import DECODE_BATCH_ROWS
from esms_analytics.wire import parse_envelope

PAGE_ROWS = 500
_WCF = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def make_pages(rows: int, seed: int = 1) -> list[bytes]:
    """``rows`` simulator rows as 500-row response bodies, exactly as served."""
    day = date(2026, 11, 1)
    history = History(
        seed=seed,
        first_day=day,
        last_day=day,
        daily_volume=1,
        counts=lambda sms_type, _: rows if sms_type == 2 else 0,
    )
    now_ms = int(datetime(2026, 11, 10, tzinfo=UTC).timestamp() * 1000)
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000) - 7 * 3_600_000
    slices = history.visible(2, start, start + 86_400_000 - 1, now_ms)
    everything = [message for batch, lo, hi in slices for message in batch[lo:hi]]
    return [
        wcf_json(
            {
                "CodeResult": "100",
                "CountTotal": rows,
                "SentData": [render_row(m, now_ms) for m in everything[i : i + PAGE_ROWS]],
            }
        )
        for i in range(0, len(everything), PAGE_ROWS)
    ]


def ours(pages: list[bytes]) -> pl.DataFrame:
    """What fetch_window does: parse each page to strings, decode in batches."""
    frames, batch, held = [], [], 0
    for body in pages:
        envelope = parse_envelope(body)
        assert not isinstance(envelope, str)
        batch.append(envelope.raw)
        held += envelope.raw.height
        if held >= DECODE_BATCH_ROWS:
            frames.append(decode_raw(pl.concat(batch)))
            batch, held = [], 0
    if batch:
        frames.append(decode_raw(pl.concat(batch)))
    return pl.concat(frames)


def ours_per_page(pages: list[bytes]) -> pl.DataFrame:
    """The same, decoding every 500-row page on its own (why windows decode in batches)."""
    return pl.concat([decode_raw(parse_envelope(body).raw) for body in pages])  # type: ignore[union-attr]


def naive_pandas(pages: list[bytes]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for body in pages:
        rows.extend(json.loads(body)["SentData"])
    frame = pd.DataFrame(rows)

    def parse(value: str) -> datetime:
        match = _WCF.match(value)
        assert match is not None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(match.group(1)))

    frame["sent_at"] = frame["SentTime"].apply(parse)
    return frame


def run(rows: int = 200_000, repeats: int = 5) -> dict[str, Any]:
    pages = make_pages(rows)
    timings: list[Timing] = [
        time_runs("json.loads alone (stdlib)", lambda: [json.loads(p) for p in pages], repeats),
        time_runs(
            "orjson.loads alone (parse floor)", lambda: [orjson.loads(p) for p in pages], repeats
        ),
        time_runs(
            "naive pandas (json + DataFrame + per-row datetime)",
            lambda: naive_pandas(pages),
            repeats,
        ),
        time_runs(
            "esms-analytics, one decode per 500-row page",
            lambda: ours_per_page(pages),
            max(1, repeats // 2),
        ),
        time_runs(
            "esms-analytics (pages parsed by Polars, decoded in batches)",
            lambda: ours(pages),
            repeats,
        ),
    ]
    frame = ours(pages)
    assert frame.height == rows
    by_name = {timing.name: timing for timing in timings}
    ours_median = timings[-1].median
    floor = by_name["orjson.loads alone (parse floor)"].median
    pandas = by_name["naive pandas (json + DataFrame + per-row datetime)"].median
    return {
        "rows": rows,
        "bytes": sum(map(len, pages)),
        "timings": timings,
        "speedup_vs_pandas": pandas / ours_median,
        "ratio_to_floor": ours_median / floor,
    }


def run_single_page(repeats: int = 300) -> dict[str, Any]:
    """One page of 1 and of 500 rows: our decode against naive pandas on the same bytes.

    "parse + decode" starts from the bytes, as pandas does: the target of issue 23
    is about it. ``decode_raw`` starts from the page's rows already parsed to
    strings (what the client hands it), shown beside it.
    """
    pages: dict[int, Any] = {}
    for rows in (1, PAGE_ROWS):
        body = make_pages(rows)[0]
        raw = parse_envelope(body).raw  # type: ignore[union-attr]
        timings = time_interleaved(
            {
                "naive pandas (json + DataFrame + per-row datetime)": lambda b=body: naive_pandas(
                    [b]
                ),
                "esms-analytics parse + decode": lambda b=body: decode_raw(
                    parse_envelope(b).raw  # type: ignore[union-attr]
                ),
                "esms-analytics decode_raw": lambda r=raw: decode_raw(r),
            },
            repeats,
        )
        assert decode_raw(raw).height == rows
        pages[rows] = {timing.name: timing.median for timing in timings}
    full = pages[PAGE_ROWS]
    pandas = full["naive pandas (json + DataFrame + per-row datetime)"]
    return {
        "repeats": repeats,
        "pages": pages,
        "decode_share_of_pandas": full["esms-analytics decode_raw"] / pandas,
        "parse_decode_share_of_pandas": full["esms-analytics parse + decode"] / pandas,
    }
