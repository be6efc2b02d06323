"""Benchmarks are not tests: this only runs them on tiny data so that they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_reports import OVERHEAD_CASES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.spark  # the reports benchmark times Spark too, in a subprocess of its own:
@pytest.mark.xdist_group("spark")  # beside the other Spark tests, never two JVMs at once
def test_every_benchmark_runs_on_tiny_data(tmp_path: Path) -> None:
    output = tmp_path / "BENCHMARKS.md"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text("utf-8")
    headings = (
        "## 1. Decode",
        "### One page at a time",
        "## 2. Sync under latency",
        "### CPU of a sync against a plain `requests` loop",
        "### Peak memory syncing one large day",
        "## 3. Reports",
        "## 4. Lake size",
        "## 5. A lake in object storage",
        "## 6. Many small files",
        "### What a monthly compaction of settled days would gain and cost",
        "## 7. A first sync",
        "## 8. Requests of a first sync",
        "## 9. Table formats: a 3-year x 7-type report",
        "## 10. A pseudonymised sync against a raw one",
    )
    for heading in headings:
        assert heading in text
    # No timing is asserted; every target is stated as met or missed.
    assert text.count("**met**") + text.count("**missed**") == 17
    reports = text[text.index("## 3. Reports") : text.index("## 4. Lake size")]
    assert "| spark (esms-analytics) |" in reports
    # Every report is timed against the pure-Polars code before Narwhals, same run.
    assert "### The Narwhals layer against the pure-Polars reports before it" in reports
    for report in OVERHEAD_CASES:
        assert f"| {report} |" in reports
