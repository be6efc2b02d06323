"""Delta and Iceberg lakes: one sync, one commit; time travel; the format kept; kills, damage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import requests
from polars.testing import assert_frame_equal

from esms_analytics import ConfigError
from esms_analytics.errors import LakeError
from esms_analytics.lake import LAKE_SCHEMA, read_lake
from esms_analytics.simulator import Simulator
from esms_analytics.store import open_store
from esms_analytics.sync import sync
from esms_analytics.tables import Compacted, open_table, table_format_of
from tests.conftest import NOW
from tests.s3 import S3Server, free_port

KEY = ["sms_type", "date", "sms_id", "reference_id", "sent_at"]
FIRST, LAST = NOW.date() - timedelta(days=6), NOW.date() - timedelta(days=1)
#: The table formats; each test below runs on both where it applies.
FORMATS = pytest.mark.parametrize("table_format", ["delta", "iceberg"])


def _commit_file(lake: Path, table_format: str) -> Path:
    """The file a reader opens first: Delta's first log entry, Iceberg's newest metadata."""
    if table_format == "delta":
        return lake / "delta" / "_delta_log" / "00000000000000000000.json"
    return max((lake / "iceberg" / "metadata").glob("*.metadata.json"))


def _sync(sim: Simulator, lake: str, first: date, last: date, **options: object) -> object:
    with sim.client() as client:
        return sync(lake, first, last, client=client, progress=False, now=NOW, **options)  # type: ignore[arg-type]


@FORMATS
def test_a_table_sync_is_one_commit_with_the_hive_rows(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    hive, delta = str(tmp_path / "hive"), str(tmp_path / table_format)
    _sync(sim, hive, FIRST, LAST, sms_types=[2, 8])
    report = _sync(sim, delta, FIRST, LAST, sms_types=[2, 8], table_format=table_format)
    assert report.complete  # type: ignore[attr-defined]
    assert table_format_of(delta) == table_format
    assert table_format_of(hive) == "hive"
    table = open_table(delta)
    assert table is not None
    assert table.version() == 0
    rows = read_lake(delta).collect().sort(KEY)
    assert rows.schema == LAKE_SCHEMA
    assert rows.height > 0
    assert_frame_equal(rows, read_lake(hive).collect().sort(KEY))
    assert read_lake(delta, sms_types=[8], start=LAST).collect()["sms_type"].unique().to_list() == [
        8
    ]
    # The unsettled days come again in the next sync: one more version, the first kept.
    _sync(sim, delta, FIRST, LAST, sms_types=[2, 8])
    assert table.version() == 1
    assert_frame_equal(read_lake(delta, version=0).collect().sort(KEY), rows)
    assert len(table.history()) == 2


@FORMATS
def test_a_lake_keeps_its_format(sim: Simulator, tmp_path: Path, table_format: str) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, LAST, LAST, sms_types=[2])
    with pytest.raises(ConfigError, match="is a hive lake"):
        _sync(sim, lake, LAST, LAST, sms_types=[2], table_format=table_format)
    with pytest.raises(ConfigError, match="Hive lake"):
        read_lake(lake, version=0)
    assert table_format_of(lake) == "hive"


@pytest.fixture(scope="module")
def s3_process() -> Iterator[S3Server]:
    """A moto server in its own process: delta-rs holds the GIL while it waits on S3."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield S3Server(server=None, port=port, access_key="test", secret_key="test")  # type: ignore[arg-type]
    finally:
        server.kill()
        server.wait()


def test_a_delta_lake_in_a_bucket(sim: Simulator, s3_process: S3Server) -> None:
    s3_bucket = s3_process.new_bucket()
    s3_server = s3_process
    options = s3_server.storage_options()
    lake = f"s3://{s3_bucket}/lake"
    _sync(sim, lake, FIRST, LAST, sms_types=[2], table_format="delta", storage_options=options)
    rows = read_lake(lake, storage_options=options).collect()
    assert rows.height > 0
    assert rows.schema == LAKE_SCHEMA
    assert any(
        key.startswith("lake/delta/_delta_log/") for key in s3_server.keys(s3_bucket, "lake/")
    )


_CHILD = """
import sys
from datetime import date
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync
from tests.conftest import NOW
with Simulator(now=NOW, days=20, daily_volume=60, seed=11) as sim, sim.client() as client:
    print("ready", flush=True)
    sync(sys.argv[1], date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3]),
         sms_types=[2], client=client, progress=False, now=NOW, refresh=True)
"""


# Killed while it fetches and stages, and while asleep just before its commit.
@FORMATS
@pytest.mark.parametrize("pause", ["0", "3"])
def test_a_sync_killed_before_its_commit_leaves_the_last_version(
    sim: Simulator, tmp_path: Path, pause: str, table_format: str
) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, FIRST, LAST, sms_types=[2], table_format=table_format)
    before = read_lake(lake).collect().sort(KEY)
    env = {**os.environ, "ESMS_ANALYTICS_TEST_COMMIT_PAUSE": "30", "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, lake, str(FIRST - timedelta(days=3)), str(LAST)],
        env=env,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    time.sleep(float(pause))
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    table = open_table(lake)
    assert table is not None
    assert table.version() == 0
    assert_frame_equal(read_lake(lake).collect().sort(KEY), before)
    # The next sync takes the lock the dead one held, and commits.
    _sync(sim, lake, FIRST - timedelta(days=3), LAST, sms_types=[2])
    assert table.version() == 1
    assert read_lake(lake).collect().height > before.height


_CHILD_IN_COMMIT = """
import sys
from datetime import date
from esms_analytics.simulator import Simulator
from esms_analytics.sync import Staging, sync
from tests.conftest import NOW
commit = Staging.commit
def announced(self, manifest):
    print("committing", flush=True)
    commit(self, manifest)
Staging.commit = announced
with Simulator(now=NOW, days=20, daily_volume=60, seed=11) as sim, sim.client() as client:
    sync(sys.argv[1], date.fromisoformat(sys.argv[2]), date.fromisoformat(sys.argv[3]),
         client=client, progress=False, now=NOW, refresh=True)
print("committed", flush=True)
"""


#: The child's range: 20 days x 7 types, 140 partitions in one commit.
WHOLE = NOW.date() - timedelta(days=19)


@pytest.fixture(scope="module")
def whole_range(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The rows of the child's range, synced into a Hive lake (a table holds the same)."""
    lake = str(tmp_path_factory.mktemp("whole") / "lake")
    with Simulator(now=NOW, days=20, daily_volume=60, seed=11) as sim:
        _sync(sim, lake, WHOLE, LAST)
    return read_lake(lake).collect().sort(KEY)


# Killed inside its commit: Delta's takes about 0.2 s here (data files, then the log
# entry), Iceberg's 1.4 s (data files, manifests, then the catalog's row); the kills
# before it are the test above. A reader sees one whole version or the next.
@FORMATS
@pytest.mark.parametrize("delay", [0.05, 0.4])
def test_a_sync_killed_during_its_commit_leaves_one_whole_version(
    sim: Simulator, tmp_path: Path, delay: float, table_format: str, whole_range: pl.DataFrame
) -> None:
    lake, first, after = str(tmp_path / "lake"), WHOLE, whole_range
    _sync(sim, lake, FIRST, LAST, sms_types=[2], table_format=table_format)
    before = read_lake(lake).collect().sort(KEY)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_IN_COMMIT, lake, str(first), str(LAST)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"committing"
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    table = open_table(lake)
    assert table is not None
    assert table.check() == []
    rows = read_lake(lake).collect().sort(KEY)
    assert table.version() in (0, 1)
    assert_frame_equal(rows, before if table.version() == 0 else after)
    # The next sync takes the dead one's lock and commits the whole range.
    _sync(sim, lake, first, LAST, refresh=True)
    assert_frame_equal(read_lake(lake).collect().sort(KEY), after)


@FORMATS
def test_lake_check_names_a_damaged_commit_file(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    lake = tmp_path / "lake"
    _sync(sim, str(lake), LAST, LAST, sms_types=[2], table_format=table_format)
    table = open_table(str(lake))
    assert table is not None
    assert table.check() == []
    log = _commit_file(lake, table_format)
    log.write_bytes(log.read_bytes()[:40])
    problems = table.check()
    assert len(problems) == 1
    assert str(log) in problems[0]


@FORMATS
def test_a_table_given_by_a_relative_path_checks_sound_and_refuses_unknown_versions(
    sim: Simulator, tmp_path: Path, table_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the README's examples give lakes as relative folders
    _sync(sim, "lake", LAST, LAST, sms_types=[2], table_format=table_format)
    table = open_table("lake")
    assert table is not None
    assert table.check() == []
    for version in (5, -1):
        with pytest.raises(ConfigError, match=f"has no version {version} ") as refused:
            read_lake("lake", version=version).collect()
        assert "versions are 0 to 0" in str(refused.value)
        assert len(str(refused.value).splitlines()) == 1


@FORMATS
def test_lake_info_gives_each_partition_the_bytes_of_its_table_files(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    from esms_analytics.check import lake_info

    lake = tmp_path / "lake"
    _sync(sim, str(lake), FIRST, LAST, sms_types=[2, 8], table_format=table_format)
    windows = lake_info(str(lake)).windows
    on_disk = sum(path.stat().st_size for path in (lake / table_format).rglob("*.parquet"))
    assert on_disk > 0
    assert windows["file_bytes"].sum() == on_disk  # one commit: every data file is live
    assert (windows.filter(pl.col("rows") > 0)["file_bytes"] > 0).all()


@FORMATS
def test_compact_merges_the_files_of_settled_days(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, FIRST, FIRST, sms_types=[2], table_format=table_format)
    _sync(sim, lake, FIRST, FIRST, sms_types=[2], refresh=True)
    table = open_table(lake)
    assert table is not None
    before = read_lake(lake).collect().sort(KEY)
    done = table.compact(NOW.date())
    assert done.version == table.version()
    assert_frame_equal(read_lake(lake).collect().sort(KEY), before)
    assert isinstance(pl.DataFrame(table.history()), pl.DataFrame)


@FORMATS
def test_the_cli_syncs_checks_and_refuses_another_format(
    sim: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    table_format: str,
) -> None:
    from esms_analytics.cli import main

    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    lake = tmp_path / "lake"
    sync_args = ["sync", "--lake", str(lake), "--from", str(LAST), "--to", str(LAST)]
    sync_args += ["--base-url", sim.base_url, "--quiet", "--rate-limit", "0", "--sms-type", "2"]
    assert main([*sync_args, "--table-format", table_format]) == 0
    assert main(["lake", "check", "--lake", str(lake)]) == 0
    # lake info reads the table's partitions, not sms/ (it reported every day missing).
    capsys.readouterr()
    assert main(["lake", "info", "--lake", str(lake)]) == 0
    info = capsys.readouterr().out
    assert "healthy" in info
    assert main([*sync_args, "--table-format", "hive"]) == 2
    err = capsys.readouterr().err
    assert f"is {'an' if table_format == 'iceberg' else 'a'} {table_format} lake" in err
    assert len(err.strip().splitlines()) == 1
    log = _commit_file(lake, table_format)
    log.write_bytes(b"{not json")
    assert main(["lake", "check", "--lake", str(lake)]) == 5
    assert str(log) in capsys.readouterr().out


@FORMATS
def test_a_second_sync_at_once_is_refused_and_commits_nothing(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    from esms_analytics.errors import LakeLockedError
    from esms_analytics.lake import lake_lock

    lake = str(tmp_path / "lake")
    _sync(sim, lake, LAST, LAST, sms_types=[2], table_format=table_format)
    table = open_table(lake)
    assert table is not None
    with lake_lock(lake), pytest.raises(LakeLockedError):  # the first sync holds the lock
        _sync(sim, lake, FIRST, LAST, sms_types=[2])
    assert table.version() == 0


@FORMATS
def test_a_resync_replaces_a_changed_day(sim: Simulator, tmp_path: Path, table_format: str) -> None:
    hive, lake, today = str(tmp_path / "hive"), str(tmp_path / "lake"), NOW.date()
    for where, kind in ((hive, None), (lake, table_format)):
        _sync(sim, where, today, today, sms_types=[2], table_format=kind)
    early = read_lake(lake).collect().sort(KEY)
    assert not early["is_final"].all()
    sim.clock.advance(timedelta(days=4))  # the day's reports arrive: every row final
    for where in (hive, lake):
        with sim.client() as client:
            now = sim.clock.now()
            sync(where, today, today, sms_types=[2], client=client, progress=False, now=now)
    late = read_lake(lake).collect().sort(KEY)
    assert late["is_final"].all()
    assert late.select(KEY).is_unique().all()  # replaced, not appended
    assert_frame_equal(late, read_lake(hive).collect().sort(KEY))
    assert_frame_equal(read_lake(lake, version=0).collect().sort(KEY), early)


def test_an_iceberg_lake_in_a_bucket_needs_a_catalog(
    sim: Simulator,
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = s3_server.storage_options()
    lake = f"s3://{s3_bucket}/lake"
    monkeypatch.delenv("ESMS_ICEBERG_CATALOG_URI", raising=False)
    with pytest.raises(ConfigError, match="set ESMS_ICEBERG_CATALOG_URI") as refused:
        _sync(sim, lake, LAST, LAST, sms_types=[2], table_format="iceberg", storage_options=options)
    assert len(str(refused.value).splitlines()) == 1
    assert s3_server.keys(s3_bucket) == {}  # refused before the lake was made an Iceberg lake
    catalog = tmp_path / "catalog.db"
    monkeypatch.setenv("ESMS_ICEBERG_CATALOG_URI", f"sqlite:///{catalog}")
    _sync(sim, lake, FIRST, LAST, sms_types=[2], table_format="iceberg", storage_options=options)
    first = read_lake(lake, storage_options=options).collect().sort(KEY)
    assert first.height > 0
    assert first.schema == LAKE_SCHEMA
    assert catalog.exists()
    keys = s3_server.keys(s3_bucket, "lake/")
    assert any(key.startswith("lake/iceberg/metadata/") for key in keys)
    assert any(key.startswith("lake/iceberg/data/") for key in keys)
    _sync(sim, lake, FIRST, LAST, sms_types=[2], storage_options=options)
    table = open_table(open_store(lake, storage_options=options))
    assert table is not None
    assert table.version() == 1
    assert table.check() == []
    assert_frame_equal(
        read_lake(lake, version=0, storage_options=options).collect().sort(KEY), first
    )
    # Another catalog does not know the table: refused, not taken for an empty lake.
    monkeypatch.setenv("ESMS_ICEBERG_CATALOG_URI", f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(LakeError, match="does not know"):
        read_lake(lake, storage_options=options)


def test_an_iceberg_lake_in_a_bucket_with_an_aws_glue_catalog(
    sim: Simulator,
    s3_process: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import boto3

    from esms_analytics.cli import main

    bucket, options = s3_process.new_bucket(), s3_process.storage_options()
    lake, hive = f"s3://{bucket}/lake", str(tmp_path / "hive")
    # moto answers Glue on the S3 port; boto3 takes a service's endpoint from the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL_GLUE", s3_process.endpoint)
    for name in ("aws_access_key_id", "aws_secret_access_key", "aws_region"):
        monkeypatch.setenv(name.upper(), options[name])
    monkeypatch.setenv("ESMS_ICEBERG_CATALOG_URI", f"glue://{options['aws_region']}")
    _sync(sim, hive, FIRST, LAST, sms_types=[2])
    _sync(sim, lake, FIRST, LAST, sms_types=[2], table_format="iceberg", storage_options=options)
    first = read_lake(lake, storage_options=options).collect().sort(KEY)
    assert_frame_equal(first, read_lake(hive).collect().sort(KEY))
    _sync(sim, lake, FIRST, LAST, sms_types=[2], storage_options=options)
    table = open_table(open_store(lake, storage_options=options))
    assert table is not None
    assert table.version() == 1
    assert_frame_equal(
        read_lake(lake, version=0, storage_options=options).collect().sort(KEY), first
    )
    # The table is Glue's: its database, its name, its metadata in the lake's bucket.
    glue = boto3.client("glue", endpoint_url=s3_process.endpoint, region_name=options["aws_region"])
    (found,) = glue.get_tables(DatabaseName="esms")["TableList"]
    assert found["Name"] == table.identifier.split(".")[1]  # type: ignore[attr-defined]
    assert found["Parameters"]["metadata_location"].startswith(f"s3://{bucket}/lake/iceberg/")
    # The command line names the catalog for one command, and puts the environment back.
    monkeypatch.delenv("ESMS_ICEBERG_CATALOG_URI")
    flags = [f"--storage-option={name}={value}" for name, value in options.items()]
    capsys.readouterr()
    assert main(["report", "delivery", "--lake", lake, *flags, "--format", "csv",
                 "--catalog-uri", f"glue://{options['aws_region']}"]) == 0  # fmt: skip
    assert "ESMS_ICEBERG_CATALOG_URI" not in os.environ
    assert main(["report", "delivery", "--lake", lake, *flags, "--format", "csv"]) == 2
    out, err = capsys.readouterr()
    assert out.count("\n") > 1
    assert len(err.strip().splitlines()) == 1
    assert "--catalog-uri" in err


def test_a_local_lake_keeps_the_catalog_it_was_made_with(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own, named, shared = tmp_path / "own", tmp_path / "named", tmp_path / "shared.db"
    monkeypatch.delenv("ESMS_ICEBERG_CATALOG_URI", raising=False)
    _sync(sim, str(own), LAST, LAST, sms_types=[2], table_format="iceberg")
    assert (own / "iceberg" / "catalog.db").exists()
    monkeypatch.setenv("ESMS_ICEBERG_CATALOG_URI", f"sqlite:///{shared}")
    # A lake made now goes to the named catalog; the first keeps its own file.
    _sync(sim, str(named), LAST, LAST, sms_types=[2], table_format="iceberg")
    _sync(sim, str(own), LAST, LAST, sms_types=[2])
    assert not (named / "iceberg" / "catalog.db").exists()
    assert shared.exists()
    for lake, version in ((own, 1), (named, 0)):
        table = open_table(str(lake))
        assert table is not None
        assert table.version() == version
    assert read_lake(named).collect().height == read_lake(own).collect().height > 0
    # Without the catalog it was made with, the lake says where to look, in one line.
    monkeypatch.delenv("ESMS_ICEBERG_CATALOG_URI")
    with pytest.raises(LakeError, match="ESMS_ICEBERG_CATALOG_URI") as lost:
        read_lake(named).collect()
    assert len(str(lost.value).splitlines()) == 1


def test_a_catalog_that_cannot_be_opened_is_one_line_without_its_url(
    sim: Simulator, s3_process: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket, options = s3_process.new_bucket(), s3_process.storage_options()
    secret_url = "postgresql+nosuchdriver://user:hunter2-password@127.0.0.1:1/catalog"
    monkeypatch.setenv("ESMS_ICEBERG_CATALOG_URI", secret_url)
    with pytest.raises(ConfigError) as refused:
        _sync(sim, f"s3://{bucket}/lake", LAST, LAST, sms_types=[2], table_format="iceberg",
              storage_options=options)  # fmt: skip
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert "cannot be opened" in message
    assert "hunter2" not in message
    assert s3_process.keys(bucket) == {}


def test_a_catalog_error_that_quotes_the_password_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyiceberg.catalog.sql

    from esms_analytics.tables.iceberg import named_catalog

    def refuse(*_: object, **__: object) -> None:
        raise RuntimeError("cannot connect as scott:tiger-secret@db.example (timeout)")

    monkeypatch.setattr(pyiceberg.catalog.sql, "SqlCatalog", refuse)
    with pytest.raises(ConfigError) as refused:
        named_catalog("postgresql://scott:tiger-secret@db.example/catalog", "file:///tmp", {})
    assert "tiger-secret" not in str(refused.value)
    assert "scott:***@db.example (timeout)" in str(refused.value)


def test_an_iceberg_table_stores_small_integers_as_int32_and_reads_them_back(
    sim: Simulator, tmp_path: Path
) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, LAST, LAST, sms_types=[2], table_format="iceberg")
    table = open_table(lake)
    assert table is not None
    rows = table.read().collect()
    assert rows.schema["sms_type"] == pl.Int16
    assert rows.schema["send_status"] == pl.Int8
    # Other engines see the table's own types: 32-bit integers, instants in UTC.
    raw = pl.scan_iceberg(str(max((tmp_path / "lake" / "iceberg" / "metadata").glob("*.json"))))
    schema = raw.collect_schema()
    assert schema["sms_type"] == pl.Int32
    assert schema["sent_at"] == pl.Datetime("us", "UTC")
    with pytest.raises(ConfigError, match="has no version 5"):
        table.read(version=5)


def test_iceberg_compact_rewrites_a_partition_of_several_files(
    sim: Simulator, tmp_path: Path
) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, FIRST, FIRST + timedelta(days=1), sms_types=[2], table_format="iceberg")
    table = open_table(lake)
    assert table is not None
    before = read_lake(lake).collect().sort(KEY)
    _split_first_day(table)
    done = table.compact(NOW.date())
    assert (done.files_removed, done.files_added, done.version) == (2, 1, 1)
    assert table.version() == 1
    assert_frame_equal(read_lake(lake).collect().sort(KEY), before)
    assert table.compact(NOW.date()) == Compacted(0, 0, 1)  # nothing left to merge


def test_an_iceberg_lake_without_pyiceberg_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyiceberg" else found(name, *a),
    )
    with pytest.raises(ConfigError, match=r"pip install 'esms-analytics\[iceberg\]'"):
        open_table(str(tmp_path), "iceberg")


@FORMATS
def test_a_sync_of_new_partitions_only_adds_them(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    lake = str(tmp_path / "lake")
    _sync(sim, lake, LAST, LAST, sms_types=[2], table_format=table_format)
    first = read_lake(lake).collect()
    _sync(sim, lake, LAST, LAST, sms_types=[8])  # nothing of it stored yet: nothing replaced
    table = open_table(lake)
    assert table is not None
    assert table.version() == 1
    assert table.partitions() == {(2, LAST), (8, LAST)}
    assert_frame_equal(read_lake(lake, sms_types=[2]).collect().sort(KEY), first.sort(KEY))


def test_the_cli_compacts_a_table_lake_and_refuses_a_hive_one(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from esms_analytics.cli import main

    lake = str(tmp_path / "lake")
    _sync(sim, lake, FIRST, FIRST + timedelta(days=1), sms_types=[2], table_format="iceberg")
    table = open_table(lake)
    assert table is not None
    before = read_lake(lake).collect().sort(KEY)
    _split_first_day(table)
    capsys.readouterr()

    assert main(["lake", "compact", "--lake", lake]) == 0

    assert "2 files of the days before" in capsys.readouterr().err
    assert table.version() == 1
    # Once merged, nothing is left to merge, and no version is made.
    assert main(["lake", "compact", "--lake", lake]) == 0
    assert "nothing to merge in the days before" in capsys.readouterr().err
    assert table.version() == 1
    assert_frame_equal(read_lake(lake).collect().sort(KEY), before)
    assert_frame_equal(read_lake(lake, version=0).collect().sort(KEY), before)
    hive = str(tmp_path / "hive")
    _sync(sim, hive, FIRST, FIRST, sms_types=[2])
    assert main(["lake", "compact", "--lake", hive]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "is a Hive lake" in err
    assert main(["lake", "compact", "--lake", str(tmp_path / "nothing")]) == 5


def _split_first_day(table: object) -> None:
    """Split FIRST's customer-care partition into two files, as another writer might."""
    raw = table._table()  # type: ignore[attr-defined]
    day = f"sms_type = 2 AND date = '{FIRST.isoformat()}'"
    rows = raw.scan(row_filter=day).to_arrow()
    with raw.transaction() as tx:
        tx.delete(day)
        tx.append(rows.slice(0, 2))
        tx.append(rows.slice(2))
