"""Bad invocations through the real command: one `error:` line, the documented code, no traceback.

Each row runs `python -m esms_analytics ...` in its own process (rows spread over
pytest-xdist workers). Placeholders in braces are filled from the `world` fixture.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from esms_analytics.cli import main
from esms_analytics.lake import lake_lock
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW

DAY = str(NOW.date() - timedelta(days=1))
SYNC = ["sync", "--lake", "{tmp}/new", "--base-url", "{url}", "--quiet"]
RANGE = ["--from", "2026-11-01", "--to", "2026-11-02"]
FETCH = ["fetch", "--from", DAY, "--to", DAY, "--base-url", "{url}", "--quiet"]
CSV = ["--output", "{tmp}/out.csv"]
UNDER_A_FILE = "{file} is a file, not a folder; choose another place"

#: (name, argv, exit code, what stderr must name). Environment changes ride in `ENV`.
ROWS: list[tuple[str, list[str], int, str]] = [
    ("no command", [], 2, "COMMAND"),
    ("unknown command", ["frob"], 2, "frob"),
    ("unknown option", ["lake", "info", "--lake", "{lake}", "--frobnicate"], 2, "--frobnicate"),
    ("sync bad --from", [*SYNC, "--from", "2026-13-01", "--to", "2026-11-02"], 2, "2026-13-01"),
    ("sync bad --to", [*SYNC, "--from", "2026-11-01", "--to", "2026-11-31"], 2, "2026-11-31"),
    ("sync reversed", [*SYNC, "--from", "2026-11-02", "--to", "2026-11-01"], 2, "swap"),
    ("sync type 3", [*SYNC, *RANGE, "--sms-type", "3"], 2, "'3'"),
    ("sync type word", [*SYNC, *RANGE, "--sms-type", "zalo"], 2, "'zalo'"),
    ("sync type 99", [*SYNC, *RANGE, "--sms-type", "2", "--sms-type", "99"], 2, "'99'"),
    ("sync workers 0", [*SYNC, *RANGE, "--workers", "0"], 2, "'0'"),
    ("sync workers word", [*SYNC, *RANGE, "--workers", "many"], 2, "'many'"),
    ("sync workers 1000", [*SYNC, *RANGE, "--workers", "1000"], 2, "'1000'"),
    ("sync attempts 0", [*SYNC, *RANGE, "--max-attempts", "0"], 2, "'0'"),
    ("sync settle -1", [*SYNC, *RANGE, "--settle-days", "-1"], 2, "'-1'"),
    ("sync settle huge", [*SYNC, *RANGE, "--settle-days", "99999999"], 2, "'99999999'"),
    ("sync rate word", [*SYNC, *RANGE, "--rate-limit", "abc"], 2, "'abc'"),
    ("sync rate negative", [*SYNC, *RANGE, "--rate-limit", "-1"], 2, "-1"),
    ("sync no --lake", ["sync", *RANGE], 2, "--lake"),
    ("sync no --from", ["sync", "--lake", "{tmp}/new", "--to", "2026-11-02"], 2, "--from"),
    ("sync lake is a file", [*SYNC, *RANGE, "--lake", "{file}"], 5, "{file}"),
    ("sync ftp url", [*SYNC, *RANGE, "--base-url", "ftp://x"], 2, "ftp://x"),
    ("sync plain http", [*SYNC, *RANGE, "--base-url", "http://example.com/x"], 2, "example.com"),
    ("sync refused", [*SYNC, *RANGE, "--base-url", "{closed}", "--max-attempts", "1"], 4, "{hp}"),
    ("sync https on http", [*SYNC, *RANGE, "--base-url", "{https}"], 4, "plain HTTP"),
    ("sync no secret", [*SYNC, *RANGE], 2, "ESMS_SECRET_KEY"),
    ("sync wrong secret", [*SYNC, *RANGE], 3, "ESMS_SECRET_KEY"),
    ("sync locked lake", [*SYNC, *RANGE, "--lake", "{locked}"], 5, "{locked}"),
    ("sync unknown option", [*SYNC, *RANGE, "--frobnicate"], 2, "--frobnicate"),
    # Every output file (fetch, report, plot, workbook, page) is checked by one function
    # in the same words: the option and path, what is wrong, what to do.
    ("fetch xlsx", [*FETCH, "--output", "x.xlsx"], 2, "--output x.xlsx must end in .parquet, .csv"),
    ("fetch under a file", [*FETCH, "--output", "{file}/a.csv"], 2, UNDER_A_FILE),
    ("fetch deep under a file", [*FETCH, "--output", "{file}/sub/a.csv"], 2, UNDER_A_FILE),
    ("fetch onto a folder", [*FETCH, "--output", "{folder}"], 2, "--output {folder} is a folder;"),
    ("fetch unwritable", [*FETCH, "--output", "/proc/x.csv"], 2, "cannot write in /proc ("),
    ("fetch disk full", [*FETCH, "--output", "{full}"], 5, "No space left"),
    ("fetch bad --from", [*FETCH, *CSV, "--from", "yesterday"], 2, "yesterday"),
    ("fetch type 0", [*FETCH, *CSV, "--sms-type", "0"], 2, "'0'"),
    ("fetch reversed", [*FETCH, *CSV, "--to", "2026-01-01"], 2, "2026-01-01"),
    ("fetch no --output", FETCH, 2, "--output"),
    ("fetch refused", [*FETCH, *CSV, "--base-url", "{closed}", "--max-attempts", "1"], 4, "{hp}"),
    ("fetch attempts 1000", [*FETCH, *CSV, "--max-attempts", "1000"], 2, "'1000'"),
    ("report kind", ["report", "weather", "--lake", "{lake}"], 2, "weather"),
    ("report no lake", ["report", "delivery", "--lake", "{tmp}/nowhere"], 5, "nowhere"),
    ("report lake is a file", ["report", "delivery", "--lake", "{file}"], 5, "{file}"),
    (
        "report plot under a file",
        ["report", "delivery", "--lake", "{lake}", "--plot", "{file}/x.png"],
        2,
        UNDER_A_FILE,
    ),
    (
        "report workbook unwritable",
        ["report", "cost", "--lake", "{lake}", "--format", "xlsx", "--output", "/proc/r.xlsx"],
        2,
        "--output /proc/r.xlsx: cannot write in /proc (",
    ),
    (
        "report html under a file",
        ["report", "html", "--lake", "{lake}", "--output", "{file}/r.html"],
        2,
        UNDER_A_FILE,
    ),
    (
        "report html onto a folder",
        ["report", "html", "--lake", "{lake}", "--output", "{folder}"],
        2,
        "--output {folder} must end in .html",
    ),
    (
        "report cost by planet",
        ["report", "cost", "--lake", "{lake}", "--by", "planet"],
        2,
        "planet",
    ),
    (
        "report carriers by",  # delivery takes --by since issue 12; carriers does not
        ["report", "carriers", "--lake", "{lake}", "--by", "carrier"],
        2,
        "--by does not apply to the carriers report",
    ),
    (
        "report trend by two",
        ["report", "trend", "--lake", "{lake}", "--by", "carrier", "--by", "campaign"],
        2,
        "campaign",
    ),
    ("report trend every", ["report", "trend", "--lake", "{lake}", "--every", "2d"], 2, "'2d'"),
    (
        "report hotspots min",
        ["report", "hotspots", "--lake", "{lake}", "--min-messages", "-1"],  # 0 is allowed
        2,
        "min_messages=-1",
    ),
    (
        "report format xml",
        ["report", "delivery", "--lake", "{lake}", "--format", "xml"],
        2,
        "'xml'",
    ),
    ("report corrupt", ["report", "delivery", "--lake", "{corrupt}"], 5, "part-0.parquet"),
    (
        "report bad day",
        ["report", "delivery", "--lake", "{lake}", "--from", "2026-02-30"],
        2,
        "2026-02-30",
    ),
    ("report type 4", ["report", "delivery", "--lake", "{lake}", "--sms-type", "4"], 2, "'4'"),
    ("report no kind", ["report"], 2, "kind"),
    ("lake info nowhere", ["lake", "info", "--lake", "{tmp}/nowhere"], 5, "nowhere"),
    ("lake info no --lake", ["lake", "info"], 2, "--lake"),
    ("lake frob", ["lake", "frob"], 2, "frob"),
    ("lake info file", ["lake", "info", "--lake", "{file}"], 5, "{file}"),
    ("simulate port high", ["simulate", "--port", "99999"], 2, "'99999'"),
    ("simulate port negative", ["simulate", "--port", "-1"], 2, "'-1'"),
    ("simulate port word", ["simulate", "--port", "http"], 2, "'http'"),
    ("simulate port busy", ["simulate", "--port", "{busy}"], 2, "--port {busy} is in use"),
    (
        "simulate foreign host",
        ["simulate", "--host", "8.8.8.8", "--port", "0"],
        2,
        "--host 8.8.8.8 is not an address of this machine",
    ),
    ("simulate latency -1", ["simulate", "--latency", "-1"], 2, "'-1'"),
    ("simulate latency nan", ["simulate", "--latency", "nan"], 2, "'nan'"),
    ("simulate fault kind", ["simulate", "--port", "0", "--fault", "bogus=0.5"], 2, "bogus"),
    ("simulate fault rate", ["simulate", "--port", "0", "--fault", "http503=2"], 2, "http503=2"),
    ("simulate fault word", ["simulate", "--port", "0", "--fault", "http503=x"], 2, "http503=x"),
    ("simulate days -1", ["simulate", "--days", "-1"], 2, "'-1'"),
    ("simulate volume word", ["simulate", "--daily-volume", "lots"], 2, "'lots'"),
    ("demo days 0", ["demo", "--days", "0"], 2, "'0'"),
    ("demo days huge", ["demo", "--days", "100000"], 2, "'100000'"),
    ("demo volume 0", ["demo", "--daily-volume", "0"], 2, "'0'"),
    ("sync empty lake", [*SYNC, *RANGE, "--lake", ""], 2, "''"),
    ("report empty lake", ["report", "delivery", "--lake", ""], 2, "''"),
    ("lake info empty lake", ["lake", "info", "--lake", " "], 2, "' '"),
    ("demo empty lake", ["demo", "--lake", ""], 2, "''"),
    ("sync rate nan", [*SYNC, *RANGE, "--rate-limit", "nan"], 2, "'nan'"),
    ("sync rate inf", [*SYNC, *RANGE, "--rate-limit", "inf"], 2, "'inf'"),
    ("sync a year unasked", [*SYNC, "--from", "2020-01-01", "--to", DAY], 2, "--yes"),
    ("sync from year 1", [*SYNC, "--from", "0001-01-01", "--to", DAY, "--yes"], 2, "0001-01-01"),
    ("sync wholly future", [*SYNC, "--from", "2100-01-01", "--to", "2100-01-02"], 2, "2100-01-01"),
    (
        "fetch wholly future",
        [*FETCH, *CSV, "--from", "2100-01-01", "--to", "2100-01-02"],
        2,
        "2100-01-01",
    ),
    (
        "report reversed",
        ["report", "delivery", "--lake", "{lake}", "--from", DAY, "--to", "2026-01-01"],
        2,
        "swap",
    ),
    (
        "report output not html",
        ["report", "cost", "--lake", "{lake}", "--output", "{tmp}/c.csv"],
        2,
        "--output applies to html",
    ),
    (
        "report html format",
        ["report", "html", "--lake", "{lake}", "--format", "csv"],
        2,
        "--format csv",
    ),
    ("report folder not a lake", ["report", "delivery", "--lake", "{tmp}"], 5, "is not a lake"),
    ("report inside a lake", ["report", "delivery", "--lake", "{lake}/sms"], 5, "inside a lake"),
    (
        "demo lake is a file",
        ["demo", "--lake", "{file}", "--days", "1", "--daily-volume", "10", "--quiet"],
        5,
        "{file}",
    ),
]
ENV: dict[str, dict[str, str | None]] = {
    "sync no secret": {"ESMS_SECRET_KEY": None},
    "sync wrong secret": {"ESMS_SECRET_KEY": "wrong-secret-key"},
}


def _free_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Everything the rows point at: a lake, a corrupt lake, a file, a folder, servers."""
    tmp = tmp_path_factory.mktemp("world")
    lake, corrupt, locked = tmp / "lake", tmp / "corrupt", tmp / "locked"
    (tmp / "file").write_text("a file, not a folder")
    (tmp / "folder.csv").mkdir()
    (tmp / "full.csv").symlink_to("/dev/full")
    locked.mkdir()
    closed = _free_port()
    with (
        Simulator(now=NOW, days=30, daily_volume=40, seed=3) as sim,
        socket.socket() as busy,
        lake_lock(locked),
    ):
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        for path in (lake, corrupt):
            with sim.client() as client:
                sync(path, DAY, DAY, sms_types=[2], client=client, progress=False)
        victim = next(corrupt.glob("sms/*/*/part-0.parquet"))
        victim.write_bytes(victim.read_bytes()[:50])
        yield {
            "sim": sim,
            "tmp": str(tmp),
            "lake": str(lake),
            "corrupt": str(corrupt),
            "locked": str(locked),
            "file": str(tmp / "file"),
            "folder": str(tmp / "folder.csv"),
            "full": str(tmp / "full.csv"),
            "url": sim.base_url,
            "https": sim.base_url.replace("http://", "https://"),
            "closed": f"http://127.0.0.1:{closed}/MainService.svc/json",
            "hp": f"127.0.0.1:{closed}",
            "busy": str(busy.getsockname()[1]),
        }


def test_the_table_is_big_enough() -> None:
    assert len(ROWS) >= 60
    assert len({name for name, *_ in ROWS}) == len(ROWS)


@pytest.mark.parametrize(("name", "argv", "code", "named"), ROWS, ids=[row[0] for row in ROWS])
def test_a_bad_invocation_gets_one_line_and_its_code(
    world: dict[str, Any], name: str, argv: list[str], code: int, named: str
) -> None:
    sim: Simulator = world["sim"]
    env = {**os.environ, "ESMS_API_KEY": sim.api_key, "ESMS_SECRET_KEY": sim.secret_key}
    env.pop("ESMS_BASE_URL", None)
    for key, value in ENV.get(name, {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    words = [word.format(**world) for word in argv]
    result = subprocess.run(
        [sys.executable, "-m", "esms_analytics", *words],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    err = result.stderr
    assert "Traceback" not in err
    assert result.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert named.format(**world) in err
    assert sim.secret_key not in err + result.stdout


def test_debug_after_the_command_shows_the_traceback_and_keeps_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = str(tmp_path / "nowhere")
    for argv in (
        ["lake", "info", "--lake", nowhere, "--debug"],
        ["--debug", "lake", "info", "--lake", nowhere],
    ):
        assert main(argv) == 5
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert err.strip().splitlines()[-1].startswith("error: there is no lake")


def test_a_full_disk_mid_sync_exits_5_saying_what_was_stored(
    sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from esms_analytics import lake as lake_module
    from esms_analytics.check import lake_info
    from esms_analytics.lake import read_lake

    real_write, written = lake_module._write_parquet, []

    def filling_disk(tables: Any, schema: Any, where: Any) -> None:
        # No disk fills on demand on loopback; the Parquet writer is the seam.
        if len(written) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        real_write(tables, schema, where)
        written.append(where)

    monkeypatch.setattr("esms_analytics.lake._write_parquet", filling_disk)
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    lake = tmp_path / "lake"
    code = main(
        [
            "sync",
            "--lake",
            str(lake),
            "--from",
            str(NOW.date() - timedelta(days=6)),
            "--to",
            DAY,
            "--base-url",
            sim.base_url,
            "--workers",
            "1",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 5
    assert err.count("\n") == 1, err
    assert "No space left on device" in err
    stored = lake_info(lake)
    assert f"the {stored.windows.height} windows stored before it are kept" in err
    assert read_lake(lake).collect().height == stored.rows > 0
    assert len(written) == stored.windows.filter(stored.windows["rows"] > 0).height == 3
    assert not list(lake.rglob("*.tmp"))
