"""Arguments that mean what they say: each option does what its --help says, or is refused."""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from esms_analytics import EsmsClient, RetryPolicy, ServiceUnreachableError, Window
from esms_analytics.cli import build_parser, main
from esms_analytics.codes import VN_TZ
from esms_analytics.errors import ConfigError, LakeError
from esms_analytics.lake import read_lake
from esms_analytics.manifest import Manifest
from esms_analytics.simulator import Simulator
from esms_analytics.sync import plan_sync, sync

from .conftest import NOW

DAY = str(NOW.date() - timedelta(days=1))


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv("ESMS_BASE_URL", sim.base_url)
    return sim


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_the_sync_says_up_front_what_it_plans(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = str(NOW.date() - timedelta(days=2))
    code, _, err = run(
        capsys, "sync", "--lake", str(tmp_path / "lake"), "--from", start, "--to", DAY
    )
    assert code == 0
    assert (
        f"sync {start}..{DAY}: 14 windows, 14 to fetch: at least 14 requests, about 1 s at "
        "10 requests/s" in err
    )
    env.clock.advance(timedelta(days=30))  # everything settles
    code, _, err = run(
        capsys, "sync", "--lake", str(tmp_path / "lake"), "--from", start, "--to", DAY
    )
    assert "14 windows, 0 to fetch" in err


def test_a_rate_limit_that_makes_the_sync_last_hours_is_announced(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys,
        *("sync", "--lake", str(tmp_path / "lake"), "--from", DAY, "--to", DAY),
        *("--sms-type", "2", "--rate-limit", "0.0001", "--quiet"),
    )
    assert code == 0  # one window of one page: the first request does not wait
    assert "warning: at --rate-limit 0.0001 the 1 requests take at least 2.8 h" in err


def test_a_sync_of_more_than_a_year_needs_yes_outside_a_terminal(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    command = [sys.executable, "-m", "esms_analytics", "sync", "--lake", str(lake)]
    command += ["--from", "2020-01-01", "--to", DAY, "--base-url", "http://127.0.0.1:9/x"]
    environment = {**os.environ, "ESMS_API_KEY": "k", "ESMS_SECRET_KEY": "s"}
    refused = subprocess.run(
        command, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert refused.returncode == 2
    assert "add --yes to go ahead" in refused.stderr
    assert not lake.exists()
    # With --yes it goes ahead: here to port 9, where nothing listens.
    allowed = subprocess.run(
        [*command, "--yes", "--max-attempts", "1"],
        env=environment,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert allowed.returncode == 4, allowed.stderr
    assert "nothing listens on 127.0.0.1:9" in allowed.stderr


def test_a_sync_of_more_than_a_year_asks_on_a_terminal(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "esms_analytics", "sync", "--lake", str(tmp_path / "lake")]
    command += ["--from", "2020-01-01", "--to", DAY, "--base-url", "http://127.0.0.1:9/x"]
    process = subprocess.Popen(
        command,
        env={**os.environ, "ESMS_API_KEY": "k", "ESMS_SECRET_KEY": "s"},
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    os.write(controller, b"n\n")
    _, err = process.communicate(timeout=120)
    os.close(controller)
    assert process.returncode == 2
    assert "not confirmed, nothing was fetched" in err


def test_windows_are_planned_lazily_so_a_range_of_decades_costs_no_memory(
    tmp_path: Path,
) -> None:
    assert plan_sync(tmp_path / "lake", "1970-01-02", DAY).windows > 140_000
    with pytest.raises(ConfigError, match="--from 0001-01-01 is before 1970-01-02"):
        plan_sync(tmp_path / "lake", "0001-01-01", DAY)
    tracemalloc.start()
    with (
        EsmsClient("k", "s", base_url="http://127.0.0.1:9/x", retry=RetryPolicy(1)) as client,
        pytest.raises(ServiceUnreachableError),
    ):
        sync(tmp_path / "lake", "1970-01-02", DAY, client=client, progress=False, now=NOW)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6  # a job and a future for every window at once took hundreds of MB


def test_to_after_today_in_vietnam_becomes_today_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(VN_TZ).date()
    with Simulator(days=3, daily_volume=50) as live:  # the real clock, as the CLI's
        monkeypatch.setenv("ESMS_API_KEY", live.api_key)
        monkeypatch.setenv("ESMS_SECRET_KEY", live.secret_key)
        monkeypatch.setenv("ESMS_BASE_URL", live.base_url)
        tomorrow = str(today + timedelta(days=1))
        yesterday = str(today - timedelta(days=1))
        for command in (
            ["fetch", "--output", str(tmp_path / "a.csv")],
            ["sync", "--lake", str(tmp_path / "lake")],
        ):
            code, _, err = run(
                capsys, *command, "--from", yesterday, "--to", tomorrow, "--sms-type", "2"
            )
            assert code == 0, err
            assert f"warning: --to {tomorrow} is after today in Vietnam ({today})" in err
    # Today was asked for (it may have no message yet, just after midnight in Vietnam).
    assert Manifest(tmp_path / "lake").get(2, today) is not None
    assert Manifest(tmp_path / "lake").get(2, today + timedelta(days=1)) is None


def test_sms_types_by_name(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(
        capsys,
        *("fetch", "--from", DAY, "--to", DAY, "--output", str(tmp_path / "a.json")),
        *("--sms-type", "customer_care", "--sms-type", "Zalo_Normal"),
    )
    assert code == 0
    types = {row["sms_type"] for row in json.loads((tmp_path / "a.json").read_text())}
    assert types == {2, 25}


def test_simulated_and_real_rows_never_share_a_lake(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    code, _, _ = run(capsys, "sync", "--lake", str(lake), "--from", DAY, "--to", DAY, "--quiet")
    assert code == 0
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert manifest["source"] == "simulator"
    with pytest.raises(LakeError, match="holds rows from the simulator"):
        Manifest(lake).claim("esms")  # what a sync from eSMS itself does before writing

    # A lake a real account filled: the simulator's rows are refused before any write.
    manifest["source"] = "esms"
    (lake / "_manifest.json").write_text(json.dumps(manifest))
    before = read_lake(lake).collect()
    code, _, err = run(
        capsys, "sync", "--lake", str(lake), "--from", DAY, "--to", DAY, "--refresh", "--quiet"
    )
    assert code == 5
    assert "holds rows from the esms; rows from the simulator cannot join them" in err
    assert read_lake(lake).collect().equals(before)

    code, _, err = run(capsys, "demo", "--lake", str(lake), "--days", "1", "--quiet")
    assert code == 2
    assert "holds data the simulator did not make" in err
    assert read_lake(lake).collect().equals(before)


def test_the_simulator_on_every_interface_prints_a_url_that_works() -> None:
    with Simulator(host="0.0.0.0", now=NOW, days=2, daily_volume=20) as everywhere:
        assert everywhere.base_url.startswith("http://127.0.0.1:")
        with everywhere.client() as client:
            assert client.get_page(Window.for_day(NOW.date()), 2).count_total > 0


def test_lake_info_exits_5_when_a_partition_is_corrupt(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    assert run(capsys, "sync", "--lake", str(lake), "--from", DAY, "--to", DAY, "--quiet")[0] == 0
    assert run(capsys, "lake", "info", "--lake", str(lake))[0] == 0
    victim = next(lake.glob("sms/*/*/part-0.parquet"))
    victim.write_bytes(victim.read_bytes()[:40])
    code, out, err = run(capsys, "lake", "info", "--lake", str(lake))
    assert code == 5
    assert "corrupt: sms_type=" in out
    assert err.startswith("error: 1 partitions")


def test_a_first_sync_refused_by_the_service_leaves_no_folder(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESMS_SECRET_KEY", "wrong-secret-key")
    lake = tmp_path / "new" / "lake"
    code, _, _ = run(capsys, "sync", "--lake", str(lake), "--from", DAY, "--to", DAY, "--quiet")
    assert code == 3
    assert not lake.exists()


def test_help_and_argument_errors_do_not_load_polars() -> None:
    code = (
        "import sys\n"
        "from esms_analytics.cli import main\n"
        "for argv in (['--help'], ['sync', '--help'], ['report', 'cost', '--help'],"
        " ['sync', '--lake', 'x', '--from', 'nope', '--to', 'x']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'polars', 'pyarrow', 'requests'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
    ]


def test_every_option_says_what_it_does_and_its_default() -> None:
    parser = build_parser()
    silent = [
        f"{name} {action.option_strings[0]}"
        for name, command in [("esms-analytics", parser), *parser.commands.items()]
        for action in _options(command)
        if not action.help or not ("default" in action.help or "required" in action.help)
    ]
    assert silent == []
