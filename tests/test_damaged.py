"""Every damaged lake of issue 13, on disk and in S3: what each command does, nothing lost.

For each :data:`tests.damaged.DAMAGES` row: ``read_lake``, every report through
the CLI, ``lake info``, ``lake check``, a plain ``sync`` and ``sync --refresh``
of the damaged day. No command shows a traceback; each exits with its
documented code; what the damage left is either read, repaired, or moved to
``_quarantine/``, never deleted.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import CorruptPartitionError, check_lake, delivery
from esms_analytics.check import lake_info
from esms_analytics.cli import main
from esms_analytics.lake import read_lake, reading_lake
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW
from .damaged import DAMAGES, Damage, copied_part, stray_file
from .lakes import Lake
from .s3 import S3Server

TODAY = NOW.date()
START = TODAY - timedelta(days=6)
VICTIM = START  # settled: a plain sync never asks for it again
VICTIM_KEY = f"sms/sms_type=2/date={VICTIM}/part-0.parquet"
KEY = ["sms_type", "date", "reference_id", "phone"]
REPORTS = ("delivery", "cost", "trend", "carriers", "hotspots")


def cli(capsys: pytest.CaptureFixture[str], lake: Lake, *argv: str) -> tuple[int, str]:
    flags = [f"--storage-option={key}={value}" for key, value in (lake.options or {}).items()]
    code = main([*argv, "--lake", lake.location, *flags])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


def frame(lake: Lake) -> pl.DataFrame:
    with reading_lake(lake.location):
        return read_lake(lake.location, storage_options=lake.options).collect().sort(KEY)


def sync_cli(capsys: pytest.CaptureFixture[str], lake: Lake, sim: Simulator, *extra: str) -> int:
    code, text = cli(
        capsys,
        lake,
        "sync",
        "--from",
        str(START),
        "--to",
        str(TODAY),
        "--sms-type",
        "2",
        "--base-url",
        sim.base_url,
        "--quiet",
        *extra,
    )
    assert code == 0, text
    return code


@pytest.fixture(params=["disk", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "disk":
        return Lake.on_disk(tmp_path / "lake")
    s3: S3Server = request.getfixturevalue("s3_server")
    return Lake.on_s3(s3, s3.new_bucket())


@pytest.mark.parametrize("damage", DAMAGES, ids=[damage.name for damage in DAMAGES])
def test_a_damaged_lake(
    damage: Damage,
    location: Lake,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if location.kind == "s3" and not damage.on_s3:
        pytest.skip("no such thing in a bucket")
    lake = location
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    sync_cli(capsys, lake, sim)
    before = frame(lake)
    assert before.filter(pl.col("date") == VICTIM).height > 0
    damage.apply(lake, VICTIM_KEY)

    # Readers: the Python API and every report.
    if damage.read == "error":
        # Nothing is read before the scan; when it fails, the damaged file is named.
        with pytest.raises(CorruptPartitionError, match=rf"{VICTIM_KEY}.*--refresh"):
            frame(lake)
        if lake.options is None:
            # A report given the lake's path names the file too (a bucket's keys would come
            # from AWS_*, which this test leaves alone).
            with pytest.raises(CorruptPartitionError, match=rf"{VICTIM_KEY}.*--refresh"):
                delivery(lake.location)
    else:
        expected = before if damage.read == "ok" else before.filter(pl.col("date") != VICTIM)
        assert_frame_equal(frame(lake), expected)
    for kind in REPORTS:
        code, text = cli(capsys, lake, "report", kind, "--format", "csv")
        assert code == (5 if damage.read == "error" else 0), text
        if code:
            assert text.startswith("error: "), text
            assert text.count("\n") == 1, text
            assert f"{VICTIM_KEY} is unreadable" in text, text

    # Monitoring: lake info reads footers, lake check every page; both exit 5 when damaged.
    code, text = cli(capsys, lake, "lake", "info")
    assert code == damage.info, text
    info = lake_info(lake.location, storage_options=lake.options)
    assert info.rows >= before.height - before.filter(pl.col("date") == VICTIM).height
    assert "empty" not in text
    if damage.name.startswith("manifest"):
        assert "rebuilt" in text
    code, text = cli(capsys, lake, "lake", "check")
    assert code == 5, text
    assert not check_lake(lake.location, storage_options=lake.options).ok

    # A plain sync: never re-reads a settled file, but repairs what it can see.
    sync_cli(capsys, lake, sim)
    assert cli(capsys, lake, "lake", "check")[0] == damage.after_sync
    # sync --refresh of the day: the lake is whole again, and nothing was deleted.
    code = sync_cli(capsys, lake, sim, "--refresh")
    code, text = cli(capsys, lake, "lake", "check")
    assert code == 0, text
    assert cli(capsys, lake, "lake", "info")[0] == 0
    assert_frame_equal(frame(lake), before)
    quarantine = lake.objects("_quarantine/*")
    for name in damage.quarantined:
        assert any(name in key for key in quarantine), (name, quarantine)
    assert lake.objects("sms/*") == sorted(
        f"sms/sms_type=2/date={START + timedelta(days=n)}/part-0.parquet"
        for n in range(7)
        if before.filter(pl.col("date") == START + timedelta(days=n)).height
    )


def test_other_engines_and_read_lake_read_the_same_rows_with_the_readmes_glob(
    sim: Simulator, tmp_path: Path
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    glob = "sms/*/*/part-0.parquet"
    assert f"read_parquet('data/lake/{glob}'" in readme
    lake = Lake.on_disk(tmp_path / "lake")
    with sim.client() as client:
        sync(lake.location, START, TODAY, client=client, progress=False, now=sim.clock.now())
    copied_part(lake, VICTIM_KEY)
    stray_file(lake, VICTIM_KEY)
    ours = read_lake(lake.location).collect().height
    query = f"SELECT count(*) FROM read_parquet('{lake}/{glob}', hive_partitioning = true)"
    with duckdb.connect() as connection:
        theirs = connection.sql(query).fetchall()
    assert theirs == [(ours,)]
    assert ours == sum(footer for footer in lake_info(lake.location).windows["rows"])
