"""The README and the demo as a newcomer meets them: every code block runs."""

from __future__ import annotations

import re
import shlex
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from esms_analytics.cli import main, reference_markdown
from esms_analytics.simulator import Simulator

from .s3 import S3Server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.DOTALL)


def test_the_cli_reference_is_generated_from_help() -> None:
    section = README.split("<!-- cli-reference:start -->\n")[1].split("<!-- cli-reference:end -->")[
        0
    ]
    assert section == reference_markdown(), "run `make readme-cli`"


def test_the_readme_starts_with_the_two_commands() -> None:
    language, first = BLOCKS[0]
    assert language == "bash"
    assert [line.split("#")[0].strip() for line in first.splitlines()] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text("utf-8")
    for target in ("demo", "test", "notebook", "bench", "readme-cli"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


@pytest.mark.spark
@pytest.mark.xdist_group("spark")  # the README's Spark lines get the run's one session
def test_every_code_block_of_the_readme_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    s3_server: S3Server,
    spark: object,
) -> None:
    """Python blocks run in one namespace, shell blocks through the CLI, all in a scratch
    directory against the simulator. `make` lines are checked as Makefile targets (the demo
    and the test suite have tests of their own). The README's S3 endpoints and its bucket
    `acme-data` stand for the test's S3 server on loopback."""
    monkeypatch.chdir(tmp_path)
    s3_server.client().create_bucket(Bucket="acme-data")  # type: ignore[attr-defined]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    # The dlt block: loopback only, and its pipeline state in the scratch directory.
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    # The README's dates are fixed; the simulator's history must reach back to them.
    days = (date.today() - date(2026, 10, 1)).days + 30
    with Simulator(
        days=days, daily_volume=150, api_key="your-api-key", secret_key="your-secret-key"
    ) as sim:
        monkeypatch.setenv("ESMS_BASE_URL", sim.base_url)
        namespace: dict[str, object] = {}
        ran = 0
        for language, code in BLOCKS:
            if language == "python":
                exec(compile(code, "README.md", "exec"), namespace)
                ran += 1
            elif language == "bash":
                for line in code.splitlines():
                    command = line.split("  #")[0].strip()
                    if command.startswith("export "):
                        name, _, value = command.removeprefix("export ").partition("=")
                        if name == "AWS_ENDPOINT_URL":
                            value = s3_server.endpoint
                        monkeypatch.setenv(name, value)
                    elif command.startswith("esms-analytics "):
                        assert main(shlex.split(command)[1:]) == 0, command
                    else:
                        assert command.startswith("make "), command
                ran += 1
    assert ran >= 5
    out = capsys.readouterr().out
    assert "phone_e164" in out
    assert "delivered_share" in out
    # The same report on three engines: Polars, DuckDB and Spark each gave every row.
    assert "only showing top 3 rows" in out  # Spark's show()
    report: Any = namespace["delivery"]
    by = ["carrier", "date"]
    polars_rows = namespace["polars_report"].height  # type: ignore[attr-defined]
    assert polars_rows > 3
    assert report(namespace["lake_sms"], by=by).pl().height == polars_rows
    assert report(namespace["spark_sms"], by=by).count() == polars_rows


def test_the_demo_runs_and_runs_again_incrementally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "demo",
        "--days",
        "6",
        "--daily-volume",
        "300",
        "--lake",
        str(tmp_path / "lake"),
        "--reports",
        str(tmp_path / "reports"),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "42 windows: 42 fetched" in out
    assert "Delivery by campaign" in out
    assert "Cost by campaign" in out
    assert str(tmp_path / "reports" / "report.html") in out
    for name in ("delivery", "cost", "trend", "carriers", "hotspots"):
        assert (tmp_path / "reports" / f"{name}.png").stat().st_size > 5_000
    assert main(argv) == 0
    again = capsys.readouterr().out
    # Days that ended three or more days ago are settled and not asked for again.
    assert re.search(r"42 windows: \d+ fetched, (14|21) skipped", again), again
