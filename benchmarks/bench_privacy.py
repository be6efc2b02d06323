"""A pseudonymised sync's CPU against a raw one's, on the same pages (issue 20).

The measurement is :func:`benchmarks.bench_sync.run_cpu`'s: the simulator in
its own process, the client side in a fresh one (:data:`PRIVACY_CPU`, which is
:data:`~benchmarks.bench_sync.CPU_HARNESS` and two actions), medians of
interleaved runs. The two syncs differ in the lake's policy only; a warm-up run
of each checks what it wrote (the policy in the manifest, and the first
window's phone numbers in every file of the raw lake and in none of the
pseudonymised one).
"""

from __future__ import annotations

from typing import Any

from benchmarks.bench_sync import (
    CPU_HARNESS,
    NESTED_STEPS,
    measure_cpu,
    medians_per_100k,
    split_steps,
)
from benchmarks.common import verdict

RAW = "sync, raw lake"
PSEUDONYMISED = "sync, pseudonymised lake"
#: The target: a pseudonymised sync costs at most this times a raw one's CPU.
TARGET = 1.10

PRIVACY_CPU = CPU_HARNESS + (
    f"RAW, PSEUDONYMISED = {RAW!r}, {PSEUDONYMISED!r}\n"
    """
import os
import polars as pl
import pyarrow.parquet as pq
from esms_analytics.lake import lake_privacy
from esms_analytics.store import open_store
from esms_analytics.windows import fetch_window
# A benchmark's key, not a secret: set here, read by sync from the environment as a user's.
os.environ["ESMS_PSEUDONYM_KEY"] = "benchmark-pseudonym-key-0123456789"
with client() as esms:
    first_window = fetch_window(esms, 2, Window.for_day(day_list[0])).frame
phones = sorted(set(first_window["phone"].drop_nulls()) | set(first_window["phone_e164"].drop_nulls()))
def phones_in(lake):
    # How many values or texts in the lake's files hold a phone of the first window: every
    # string column of every data file, every file's key-value metadata, every other file.
    found = 0
    for path in (path for path in lake.rglob("*") if path.is_file()):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            texts = [frame[name] for name, dtype in frame.schema.items() if dtype == pl.String]
            metadata = pq.read_metadata(path).metadata or {}
            texts.append(pl.Series([value.decode("utf-8", "replace") for value in metadata.values()],
                                   dtype=pl.String))
        else:
            texts = [pl.Series([path.read_bytes().decode("utf-8", "replace")])]
        found += sum(int(text.str.contains_any(phones).sum()) for text in texts)
    return found
def check(policy, expect_phones):
    def inspect(lake):
        assert lake_privacy(open_store(lake)) == policy, lake_privacy(open_store(lake))
        found = phones_in(lake)
        assert (found > 0) == expect_phones, f"{found} phones of the first window in a {policy} lake"
    return inspect
raw = lambda: full_sync(privacy="raw")
pseudonymised = lambda: full_sync(privacy="pseudonymised")
# Warm-up, checking each lake: the raw one shows the check finds phones where they are.
full_sync(privacy="raw", inspect=check("raw", True))
full_sync(privacy="pseudonymised", inspect=check("pseudonymised", False))
ACTIONS = {RAW: raw, PSEUDONYMISED: pseudonymised}
runs, results = interleaved(ACTIONS)
wrap_steps(STEPS + (
    ("pseudonymise, less tokens (mask, redact, template)", "esms_analytics.privacy.policy",
     "PrivacyPolicy.pseudonymise"),
    ("phone tokens (HMAC-SHA256)", "esms_analytics.privacy.policy", "PrivacyPolicy.tokens"),
))
split = splits(ACTIONS)
print(json.dumps({"runs": runs, "split": split, "rows": results[RAW],
                  "pages": pages * days, "phones": len(phones)}))
"""
)

#: The pseudonymise step holds the tokens: taken out of it, so the split adds up.
PRIVACY_NESTED_STEPS = {
    **NESTED_STEPS,
    "pseudonymise, less tokens (mask, redact, template)": ("phone tokens (HMAC-SHA256)",),
}


def run(days: int = 20, rows_per_day: int = 5000, repeats: int = 5) -> dict[str, Any]:
    """CPU and wall seconds per 100,000 rows of a raw and a pseudonymised sync, same pages.

    ``ratio`` is the pseudonymised median CPU over the raw one; ``rounds`` the
    same ratio round by round (each round runs both, so both see its load);
    ``split`` where each sync's CPU goes, step by step.
    """
    measured = measure_cpu(PRIVACY_CPU, days, rows_per_day, repeats)
    per_100k = 100_000 / measured["rows"]
    medians = medians_per_100k(measured["runs"], per_100k)
    raw_runs, pseudonymised_runs = measured["runs"][RAW], measured["runs"][PSEUDONYMISED]
    return {
        "days": days,
        "rows_per_day": rows_per_day,
        "rows": measured["rows"],
        "pages": measured["pages"],
        "phones": measured["phones"],
        "repeats": repeats,
        "per_100k": medians,
        "ratio": medians[PSEUDONYMISED]["cpu_s"] / medians[RAW]["cpu_s"],
        "rounds": [
            pseudonymised[0] / raw[0]
            for raw, pseudonymised in zip(raw_runs, pseudonymised_runs, strict=True)
        ],
        "split": {
            name: split_steps(runs, per_100k, PRIVACY_NESTED_STEPS)
            for name, runs in measured["split"].items()
        },
    }


def privacy_section(result: dict[str, Any], command: str | None = None) -> list[str]:
    """Section 10: the table, the split of both syncs, the verdict."""
    raw = result["per_100k"][RAW]
    lines = [
        "## 10. A pseudonymised sync against a raw one",
        "",
        f"{result['days']} day(s) of {result['rows_per_day']:,} rows ({result['pages']} pages of "
        "500), the same simulator pages for both, no added latency, one worker, measured as "
        "section 2's CPU of a sync (the simulator in its own process, the client side in a "
        "fresh one, `time.process_time()` of every thread). The two syncs differ in the "
        'lake\'s policy only (`sync(..., privacy="pseudonymised")`, the key from '
        "`ESMS_PSEUDONYM_KEY`). A warm-up run of each checked its lake: the manifest's "
        f"policy, and the {result['phones']:,} phone numbers of the first window (raw and "
        "E.164) in the raw lake's files and in none of the pseudonymised one's (every string "
        "column, every footer's metadata, every other file). Medians of "
        f"{result['repeats']} interleaved runs, per 100,000 rows.",
        "",
        "| pipeline | CPU s / 100k rows | wall s / 100k rows | vs raw |",
        "|---|---:|---:|---:|",
    ]
    for name, value in result["per_100k"].items():
        lines.append(
            f"| {name} | {value['cpu_s']:.3f} | {value['wall_s']:.3f} | "
            f"{value['cpu_s'] / raw['cpu_s']:.2f}x |"
        )
    rounds = ", ".join(f"{ratio:.2f}x" for ratio in result["rounds"])
    lines += [
        "",
        f"- Target: a pseudonymised sync costs at most {TARGET - 1:.0%} more CPU than a raw "
        f"one on the same pages: {result['ratio']:.2f}x, "
        f"{verdict(result['ratio'] <= TARGET)}. Round by round: {rounds}.",
        "",
        "Where each sync's CPU goes, per 100,000 rows: the same syncs, run after the ones "
        "above with a `time.process_time()` wrapper around each step (each sync's run of "
        "median total; `PrivacyPolicy.pseudonymise` and the `tokens` it calls wrapped too).",
        "",
        f"| step | {RAW} | {PSEUDONYMISED} |",
        "|---|---:|---:|",
    ]
    raw_split, pseudonymised_split = result["split"][RAW], result["split"][PSEUDONYMISED]
    for step in dict.fromkeys([*pseudonymised_split, *raw_split]):
        lines.append(
            f"| {step} | {raw_split.get(step, 0.0):.3f} | {pseudonymised_split.get(step, 0.0):.3f} |"
        )
    lines += [
        f"| total | {sum(raw_split.values()):.3f} | {sum(pseudonymised_split.values()):.3f} |",
        "",
    ]
    if command is not None:
        lines += [f"Measured with `{command}`.", ""]
    return lines


def main() -> None:
    """Run this benchmark alone at ``make bench`` sizes and print its section."""
    result = run(days=20, rows_per_day=5000, repeats=5)
    print("\n".join(privacy_section(result, command="python -m benchmarks.bench_privacy")))


if __name__ == "__main__":
    main()
