"""The command line, in-process: exit codes, one-line errors, machine-readable output."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import esms_analytics
from esms_analytics.cli import main
from esms_analytics.lake import lake_lock, read_lake
from esms_analytics.reports import cost_breakdown, delivery_by_campaign
from esms_analytics.simulator import Simulator

from .conftest import NOW
from .s3 import S3Server

START, END = NOW.date() - timedelta(days=4), NOW.date() - timedelta(days=1)


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv("COLUMNS", "120")
    return sim


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def lake(env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "lake"
    code, out, _ = run(
        capsys,
        "sync",
        "--lake",
        str(path),
        "--from",
        str(START),
        "--to",
        str(END),
        "--base-url",
        env.base_url,
        "--quiet",
        "--rate-limit",
        "0",
    )
    assert code == 0
    assert "28 windows: 28 fetched" in out
    return path


def test_sync_then_sync_again_skips_settled_windows(
    env: Simulator, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.reset_requests()
    code, out, _ = run(
        capsys,
        "sync",
        "--lake",
        str(lake),
        "--from",
        str(START),
        "--to",
        str(END),
        "--base-url",
        env.base_url,
        "--quiet",
        "--sms-type",
        "2",
        "--sms-type",
        "1",
    )
    assert code == 0
    assert "8 windows: 0 fetched, 8 skipped" in out
    assert env.requests == []


@pytest.mark.parametrize("form", ["csv", "json"])
def test_csv_and_json_carry_exactly_the_report(
    lake: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    code, out, _ = run(
        capsys,
        "report",
        "cost",
        "--lake",
        str(lake),
        "--by",
        "carrier,sms_type",
        "--format",
        form,
        "--sms-type",
        "2",
    )
    assert code == 0
    expected = cost_breakdown(read_lake(lake, sms_types=[2]), by=["carrier", "sms_type"])
    parsed = pl.read_csv(io.StringIO(out)) if form == "csv" else pl.DataFrame(json.loads(out))
    assert parsed.columns == expected.columns
    assert_frame_equal(parsed, expected, check_dtypes=False)


def test_report_table_plot_and_filters(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "plots" / "delivery.png"
    code, out, err = run(
        capsys,
        "report",
        "delivery",
        "--lake",
        str(lake),
        "--from",
        str(END),
        "--to",
        str(END),
        "--plot",
        str(plot),
    )
    assert code == 0
    expected = delivery_by_campaign(read_lake(lake, start=END, end=END))
    assert expected["campaign"][0] in out
    assert "delivery rate" in out
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert str(plot) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["trend", "--every", "1w", "--by", "carrier"],
        ["carriers", "--format", "csv"],
        ["hotspots", "--min-messages", "5"],
        ["cost", "--totals", "--campaign", "OTP đăng nhập"],
    ],
)
def test_every_report_kind_runs(
    lake: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, _ = run(capsys, "report", argv[0], "--lake", str(lake), *argv[1:])
    assert code == 0
    assert out.strip()


def test_an_empty_report_names_its_own_threshold(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "report", "hotspots", "--lake", str(lake), "--min-messages", "99999")
    assert code == 0
    assert "or --min-messages 99999 too narrow" in err
    code, _, err = run(capsys, "report", "hotspots", "--lake", str(lake), "--campaign", "none such")
    assert "or --min-messages 100 too narrow" in err
    code, _, err = run(capsys, "report", "carriers", "--lake", str(lake), "--campaign", "none such")
    assert "(is the lake empty, or the filter too narrow?)" in err


def test_html_report_is_self_contained(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "out" / "report.html"
    code, _, _ = run(capsys, "report", "html", "--lake", str(lake), "--output", str(page))
    assert code == 0
    text = page.read_text("utf-8")
    assert text.count("data:image/png;base64,") == 5
    assert "<h2>Delivery by campaign</h2>" in text
    assert 'src="http' not in text


def test_lake_info(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lake", "info", "--lake", str(lake))
    assert code == 0
    assert f"days {START} .. {END}, 28 windows" in out


def test_lake_info_of_a_lake_that_lost_its_manifest_gives_only_the_advice_that_applies(
    lake: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(lake, copy)
    (copy / "_manifest.json").unlink()
    code, out, err = run(capsys, "lake", "info", "--lake", str(copy))
    assert code == 5
    assert "windows were rebuilt from their files' metadata" in out
    assert "the next sync writes the manifest again" in err
    assert "sync --refresh" not in err
    assert "foreign" not in err.split(";")[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sync", "--lake", "x", "--from", "2026-13-01", "--to", "2026-11-01"], "YYYY-MM-DD"),
        (
            [
                "sync",
                "--lake",
                "x",
                "--from",
                "2026-11-01",
                "--to",
                "2026-11-02",
                "--sms-type",
                "3",
            ],
            "not an eSMS SmsType",
        ),
        (["sync", "--from", "2026-11-01", "--to", "2026-11-02"], "--lake"),
        (["sync", "--lake", "x", "--from", "2026-11-02", "--to", "2026-11-01"], "swap"),
        (
            ["sync", "--lake", "x", "--from", "2026-11-01", "--to", "2026-11-02", "--workers", "0"],
            "'0' is not a whole number from 1",
        ),
        (["report", "cost", "--lake", "LAKE", "--by", "planet"], "by has 'planet'"),
        (["report", "carriers", "--lake", "LAKE", "--by", "carrier"], "does not apply"),
        (["report", "cost", "--lake", "LAKE", "--top", "3"], "--top does not apply to the cost"),
        (["report", "weather", "--lake", "LAKE"], "invalid choice"),
        (
            ["fetch", "--from", "2026-11-01", "--to", "2026-11-01", "--output", "x.xlsx"],
            ".parquet, .csv or .json",
        ),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "lake" / "sms").mkdir(parents=True)
    argv = [str(tmp_path / "lake") if arg == "LAKE" else arg for arg in argv]
    try:
        code = main(argv)  # library errors: main returns the code
    except SystemExit as exited:  # argparse errors: it exits with it
        code = int(exited.code or 0)
    _, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_library_errors_exit_with_their_documented_code(
    env: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = str(tmp_path / "lake")
    common = ["--from", str(END), "--to", str(END), "--quiet"]
    monkeypatch.setenv("ESMS_SECRET_KEY", "wrong-secret-key")
    code, _, err = run(capsys, "sync", "--lake", lake, "--base-url", env.base_url, *common)
    assert code == 3
    assert "refused" in err
    assert "wrong-secret-key" not in err

    monkeypatch.delenv("ESMS_SECRET_KEY")
    code, _, err = run(capsys, "sync", "--lake", lake, "--base-url", env.base_url, *common)
    assert code == 2
    assert "ESMS_SECRET_KEY" in err

    monkeypatch.setenv("ESMS_SECRET_KEY", env.secret_key)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/MainService.svc/json"
    code, _, err = run(
        capsys, "sync", "--lake", lake, "--base-url", closed, "--max-attempts", "1", *common
    )
    assert code == 4  # nothing listens: the sync stops at the first window
    assert "nothing listens" in err
    code, _, err = run(
        capsys,
        "fetch",
        "--output",
        str(tmp_path / "f.csv"),
        "--base-url",
        closed,
        "--max-attempts",
        "1",
        *common,
    )
    assert code == 4
    assert "nothing listens" in err
    assert len(err.strip().splitlines()) == 1

    code, _, err = run(capsys, "report", "delivery", "--lake", str(tmp_path / "nowhere"))
    assert code == 5
    assert "no lake" in err


def test_an_empty_lake_reports_an_empty_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "lake" / "sms").mkdir(parents=True)
    code, out, err = run(
        capsys, "report", "delivery", "--lake", str(tmp_path / "lake"), "--format", "csv"
    )
    assert code == 0
    assert out.splitlines()[0].startswith("campaign,messages,delivered")
    assert "no rows match" in err


def test_a_locked_lake_exits_5(
    env: Simulator, lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with lake_lock(lake):
        code, _, err = run(
            capsys,
            "sync",
            "--lake",
            str(lake),
            "--from",
            str(END),
            "--to",
            str(END),
            "--base-url",
            env.base_url,
            "--refresh",
            "--quiet",
        )
    assert code == 5
    assert "another sync" in err


def test_an_incomplete_window_exits_1(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env.faults.arrivals_per_request = 510  # every walk of the day spans two pages or more
    env.clock.set(NOW - timedelta(days=2))  # mid-afternoon of a day the CLI may fetch
    day = str((NOW - timedelta(days=2)).date())
    code, out, _ = run(
        capsys,
        "sync",
        "--lake",
        str(tmp_path / "lake"),
        "--from",
        day,
        "--to",
        day,
        "--sms-type",
        "2",
        "--base-url",
        env.base_url,
        "--quiet",
        "--rate-limit",
        "0",
    )
    assert code == 1
    assert "1 incomplete" in out


def test_fetch_writes_a_file(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "week.parquet"
    code, out, _ = run(
        capsys,
        "fetch",
        "--from",
        str(START),
        "--to",
        str(END),
        "--sms-type",
        "2",
        "--output",
        str(target),
        "--base-url",
        env.base_url,
        "--quiet",
    )
    assert code == 0
    frame = pl.read_parquet(target)
    assert f"{frame.height:,} rows" in out
    assert frame["sms_type"].unique().to_list() == [2]


def test_the_simulate_command_serves_until_stopped(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "esms_analytics",
            "simulate",
            "--port",
            str(port),
            "--daily-volume",
            "40",
            "--days",
            "3",
            "--fault",
            "http503=0.3",
            "--latency",
            "0.01",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/MainService.svc/json" in banner
        env = {"ESMS_API_KEY": "sim-api-key", "ESMS_SECRET_KEY": "sim-secret-key"}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "esms_analytics",
                "fetch",
                "--from",
                str(START),
                "--to",
                str(END),
                "--output",
                str(tmp_path / "x.json"),
                "--quiet",
                "--base-url",
                banner.split()[-1],
            ],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        # The dates are the real clock's, so the simulator may have no rows for them.
        assert result.returncode == 0, result.stderr
        assert "rows written" in result.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()  # type: ignore[union-attr]


def test_module_entry_point_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "esms_analytics", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == f"esms-analytics {esms_analytics.__version__}\n"


# -- lakes in object storage -------------------------------------------------------------


def storage_flags(s3: S3Server, **overrides: str) -> list[str]:
    options = s3.storage_options(**overrides)
    return [
        flag for key, value in options.items() for flag in ("--storage-option", f"{key}={value}")
    ]


def test_every_lake_command_takes_an_s3_url_and_storage_options(
    env: Simulator, s3_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = f"s3://{s3_server.new_bucket()}/esms"
    flags = storage_flags(s3_server)
    common = ["--from", str(START), "--to", str(END), "--base-url", env.base_url, "--quiet"]
    code, out, err = run(capsys, "sync", "--lake", lake, *flags, *common)
    assert code == 0, err
    assert "fetched" in out
    code, out, _ = run(capsys, "lake", "info", "--lake", lake, *flags)
    assert code == 0
    assert out.startswith(f"lake {lake}\n")
    code, out, _ = run(capsys, "report", "cost", "--lake", lake, *flags, "--format", "csv")
    assert code == 0
    frame = read_lake(lake, storage_options=s3_server.storage_options())
    assert_frame_equal(pl.read_csv(io.StringIO(out)), cost_breakdown(frame), check_dtypes=False)
    for text in (out, *capsys.readouterr()):
        assert s3_server.secret_key not in text
    code, _, _ = run(
        capsys, "report", "html", "--lake", lake, *flags, "--output", str(tmp_path / "r.html")
    )
    assert code == 0
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_a_store_that_refuses_exits_5_in_one_line_without_the_secret(
    env: Simulator, s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "cli-SECRET-5555"
    missing = ["--lake", "s3://no-such-bucket-cli/esms", *storage_flags(s3_server)]
    code, _, err = run(capsys, "lake", "info", *missing)
    assert code == 5
    assert err.startswith("error: the lake s3://no-such-bucket-cli/esms: ")
    assert "bucket does not exist" in err
    assert len(err.strip().splitlines()) == 1
    lake = f"s3://{s3_server.new_bucket()}/esms"
    refused = ["--lake", lake, *storage_flags(s3_server, aws_secret_access_key=secret)]
    with s3_server.enforcing_credentials():
        code, _, err = run(
            capsys, "sync", *refused, "--from", str(END), "--to", str(END), "--quiet"
        )
    assert code == 5
    assert "refused the credentials" in err
    assert secret not in err
    assert env.requests == []


def test_a_storage_option_without_equals_is_a_usage_error_that_hides_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["lake", "info", "--lake", "s3://b/esms", "--storage-option", "aws_secret:TOPSECRET"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    _, err = capsys.readouterr()
    assert exited.value.code == 2
    assert "--storage-option: give KEY=VALUE" in err
    assert "TOPSECRET" not in err


@pytest.mark.slow
def test_the_demo_runs_into_an_s3_lake(
    s3_server: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = f"s3://{s3_server.new_bucket()}/demo"
    argv = ["demo", "--lake", lake, *storage_flags(s3_server), "--days", "3"]
    code, out, _ = run(
        capsys, *argv, "--daily-volume", "100", "--reports", str(tmp_path / "r"), "--quiet"
    )
    assert code == 0
    assert "21 windows: 21 fetched" in out
    assert f"{lake}/sms/sms_type=*/date=*/part-0.parquet" in out
    assert read_lake(lake, storage_options=s3_server.storage_options()).collect().height > 0
