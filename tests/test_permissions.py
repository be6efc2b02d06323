"""Files at rest are their owner's and group's: 0640 files, 0750 folders, whatever the umask.

Issue 20 ("Personal data"): the lake, its manifest and quarantine, the spill
files and every report or export written on local disk are not readable by
other users. Each test sets the process's umask (0, or the usual 022) for its
own run only and walks every file and folder the package made.

``os.umask`` is the whole process's: it is set and put back inside one test
function, never in a fixture that another test's threads could outlive.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from esms_analytics import windows
from esms_analytics.bundle import write_bundle
from esms_analytics.cli import main
from esms_analytics.lake import PartitionWriter, lake_lock, read_lake
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync
from esms_analytics.tables import open_table

from .conftest import NOW

START, END = NOW.date() - timedelta(days=4), NOW.date() - timedelta(days=1)
#: What the package gives what it writes: exactly these, whatever the umask.
FILE, FOLDER = 0o640, 0o750
UMASKS = pytest.mark.parametrize("mask", [0o000, 0o022], ids=["umask-000", "umask-022"])


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def wrong_modes(root: Path, *, theirs: tuple[Path, ...] = ()) -> list[str]:
    """Every path under ``root`` (``root`` included) whose mode is not the rule's.

    ``theirs`` are paths the test made, whose modes the package leaves alone.
    """
    wrong = []
    for path in [root, *sorted(root.rglob("*"))]:
        if path in theirs:
            continue
        expected = FOLDER if path.is_dir() else FILE
        if mode(path) != expected:
            wrong.append(f"{path.relative_to(root.parent)} {oct(mode(path))}")
    return wrong


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv("COLUMNS", "120")
    return sim


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> None:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, out + err


def sync_args(sim: Simulator, lake: Path, *options: str) -> list[str]:
    return [
        "sync",
        "--lake",
        str(lake),
        "--from",
        str(START),
        "--to",
        str(END),
        "--sms-type",
        "2",
        "--sms-type",
        "8",
        "--base-url",
        sim.base_url,
        "--rate-limit",
        "0",
        "--quiet",
        *options,
    ]


@UMASKS
def test_a_hive_lake_its_quarantine_and_every_report_and_export_are_0640_in_0750_folders(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: int
) -> None:
    made = tmp_path / "made"  # absent: every folder under it is one the package creates
    lake = made / "new" / "lake"
    summary = tmp_path / "run.json"
    with umask(mask):
        cli(capsys, *sync_args(env, lake, "--summary-json", str(summary)))
        with lake_lock(lake):
            assert mode(lake / "_sync.lock") == FILE
        # A stray file and a damaged manifest: the next sync moves both to _quarantine/.
        partition = next((lake / "sms" / "sms_type=2").iterdir())
        stray = partition / "notes.txt"
        stray.write_text("exported by hand\n")
        manifest = lake / "_manifest.json"
        manifest.write_bytes(manifest.read_bytes()[:150])  # in place: its mode stays ours
        cli(capsys, *sync_args(env, lake, "--refresh"))
        lake_option = ("--lake", str(lake))
        cli(capsys, "report", "html", *lake_option)  # <lake>/../reports/report.html
        book = made / "books" / "week.xlsx"
        cli(capsys, "report", "html", *lake_option, "--format", "xlsx", "--output", str(book))
        cli(capsys, "report", "cost", *lake_option, "--format", "xlsx", "--output", str(book))
        for plot in ("delivery.png", "delivery.svg"):
            cli(capsys, "report", "delivery", *lake_option, "--plot", str(made / "plots" / plot))
        for export in ("week.csv", "week.json", "week.parquet"):
            cli(
                capsys,
                "fetch",
                "--from",
                str(START),
                "--to",
                str(END),
                "--sms-type",
                "2",
                "--output",
                str(made / "exports" / export),
                "--base-url",
                env.base_url,
                "--quiet",
            )
        write_bundle(read_lake(lake), made / "bundle", source=str(lake))

    quarantined = {path.name: path for path in (lake / "_quarantine").rglob("*")}
    assert {"notes.txt", "_manifest.json"} <= set(quarantined)
    # Moved, not rewritten: the stray file keeps the mode it had, behind 0750 folders.
    assert mode(quarantined["notes.txt"]) == 0o666 & ~mask
    assert (made / "new" / "reports" / "report.html").is_file()
    assert len(list((made / "bundle").glob("*.png"))) == 5
    assert wrong_modes(made, theirs=(quarantined["notes.txt"],)) == []
    assert mode(summary) == FILE


@UMASKS
@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_a_table_lake_is_0640_in_0750_folders_after_each_commit_and_compaction(
    sim: Simulator, tmp_path: Path, mask: int, table_format: str
) -> None:
    lake = tmp_path / "made" / "lake"
    with umask(mask), sim.client() as client:
        options = {"client": client, "progress": False, "now": NOW, "sms_types": [2]}
        sync(lake, START, END, table_format=table_format, **options)  # type: ignore[arg-type]
        # The first folder the table's library writes in is ours: 0750 before its first file.
        assert mode(lake / table_format) == FOLDER
        sync(lake, START, START, refresh=True, **options)  # type: ignore[arg-type]
        table = open_table(lake)
        assert table is not None
        table.compact(NOW.date())
    assert table.version() is not None
    assert wrong_modes(tmp_path / "made") == []


@UMASKS
def test_folders_the_user_made_keep_their_modes(
    env: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], mask: int
) -> None:
    lake, reports = tmp_path / "lake", tmp_path / "reports"
    for folder in (lake, reports):
        folder.mkdir()
        folder.chmod(0o755)
    with umask(mask):
        cli(capsys, *sync_args(env, lake))
        cli(capsys, "report", "html", "--lake", str(lake), "--output", str(reports / "week.html"))
    assert mode(lake) == mode(reports) == 0o755
    assert wrong_modes(lake, theirs=(lake,)) == []
    assert mode(reports / "week.html") == FILE


@UMASKS
def test_a_spill_is_its_owners_alone_while_the_window_is_walked(
    env: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mask: int
) -> None:
    spills: list[int] = []
    real_write = PartitionWriter.write

    def watched(writer: PartitionWriter, frame: pl.DataFrame) -> None:
        real_write(writer, frame)
        if writer._path is not None:
            spills.append(mode(writer._path))

    monkeypatch.setattr(PartitionWriter, "write", watched)
    monkeypatch.setattr(windows, "DECODE_BATCH_ROWS", 5)  # a page is two batches or more
    lake = tmp_path / "lake"
    with umask(mask), env.client() as client:
        sync(lake, END, END, sms_types=[2], client=client, progress=False, now=NOW, page_size=10)
    # mkstemp's 0600: stricter than the rule, as a spill is read back only by its sync.
    assert spills
    assert set(spills) == {0o600}
    assert wrong_modes(lake) == []
