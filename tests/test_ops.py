"""Production: JSON logs (--log-format json) and the run summary (sync --summary-json)."""

from __future__ import annotations

import json
import logging
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from esms_analytics.cli import main
from esms_analytics.lake import read_lake
from esms_analytics.ops.logs import JsonFormatter, configure_logging
from esms_analytics.simulator import Simulator

from .conftest import NOW

START, END = NOW.date() - timedelta(days=4), NOW.date() - timedelta(days=1)


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    return sim


def sync(sim: Simulator, lake: Path, *options: str) -> list[str]:
    return [
        "sync",
        "--lake",
        str(lake),
        "--from",
        str(START),
        "--to",
        str(END),
        "--base-url",
        sim.base_url,
        "--rate-limit",
        "0",
        *options,
    ]


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of stderr, each of which must be one JSON object."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


def test_a_json_sync_logs_one_event_a_window_and_writes_its_summary(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.faults.queue("http503")  # one retry of the first window's page, to be counted
    summary_path = tmp_path / "run.json"
    json_options = ("--log-format", "json", "--summary-json", str(summary_path), "--no-probes")
    code = main(sync(env, tmp_path / "lake", *json_options))
    out, err = capsys.readouterr()
    assert code == 0
    events = json_lines(err)  # the plan line and the progress are events too, or absent
    windows = [event for event in events if event["event"] == "window"]
    assert len(windows) == 28
    for event in windows:
        assert {
            "time",
            "level",
            "sms_type",
            "date",
            "rows",
            "requests",
            "retries",
            "seconds",
        } <= set(event)
        assert event["status"] == "fetched"
    assert sum(int(event["retries"]) for event in windows) == 1  # type: ignore[call-overload]
    assert {event["event"] for event in events} >= {"plan", "window", "summary"}

    summary = json.loads(summary_path.read_text())
    rows = read_lake(tmp_path / "lake").collect().height
    assert summary["exit_code"] == 0
    assert summary["outcome"] == "ok"
    assert summary["windows"] == summary["fetched"] == 28
    assert summary["incomplete"] == summary["failed"] == 0
    assert summary["rows"] == rows > 0
    assert summary["requests"] == len(env.requests) == 29  # counted by the client
    assert summary["retries"] == 1
    assert int(summary["bytes"]) > 1000
    assert float(summary["duration_seconds"]) > 0
    assert summary["from"] == str(START)
    assert summary["to"] == str(END)
    assert stat.S_IMODE(summary_path.stat().st_mode) == 0o640
    for text in (out, err, summary_path.read_text()):
        assert env.api_key not in text
        assert env.secret_key not in text


def test_a_refused_sync_still_writes_its_summary_with_its_exit_code(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESMS_SECRET_KEY", "wrong-secret-key-123")
    summary_path = tmp_path / "run.json"
    code = main(
        sync(env, tmp_path / "lake", "--log-format", "json", "--summary-json", str(summary_path))
    )
    _, err = capsys.readouterr()
    assert code == 3
    last = json_lines(err)[-1]
    assert last["event"] == "error"
    assert last["level"] == "ERROR"
    assert last["exit_code"] == 3
    summary = json.loads(summary_path.read_text())
    assert summary["exit_code"] == 3
    assert summary["outcome"] == "auth"
    assert "101" in str(summary["error"]) or "credentials" in str(summary["error"]).lower()
    # The sync never had a report: its window counts are unknown, not zero.
    assert summary["windows"] is None
    assert int(summary["requests"]) >= 1
    for text in (err, summary_path.read_text()):
        assert "wrong-secret-key-123" not in text
        assert env.api_key not in text


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("missing/run.json", ["does not exist", "missing"]),
        (".", ["is a folder", "file name"]),
    ],
)
def test_a_summary_that_cannot_be_written_is_refused_before_any_request(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
    words: list[str],
) -> None:
    target = str(tmp_path / where) if where != "." else str(tmp_path)
    code = main(sync(env, tmp_path / "lake", "--summary-json", target))
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --summary-json")
    for word in words:
        assert word in lines[0]
    assert env.requests == []
    assert not (tmp_path / "lake").exists()


def test_text_logs_stay_lines_for_people(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(sync(env, tmp_path / "lake", "--quiet"))
    out, err = capsys.readouterr()
    assert code == 0
    assert "28 windows: 28 fetched" in out
    assert "{" not in err  # no JSON unless asked for


def test_every_secret_of_the_environment_is_masked_in_a_log_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-very-secret-value")
    monkeypatch.setenv("ESMS_SECRET_KEY", "esms-secret-value")
    logger = logging.getLogger("esms_analytics.test_ops")
    for log_format in ("json", "text"):
        handler = configure_logging(log_format)
        try:
            logger.warning(
                "leaked aws-very-secret-value and esms-secret-value",
                extra={"event": "leak", "detail": "esms-secret-value"},
            )
        finally:
            logging.getLogger().removeHandler(handler)
        err = capsys.readouterr().err
        assert "aws-very-secret-value" not in err
        assert "esms-secret-value" not in err
        assert err.count("***") == (3 if log_format == "json" else 2)


def test_a_traceback_goes_into_one_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["traceback"]
