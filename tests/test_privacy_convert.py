"""`lake pseudonymise` (#20): a raw lake's pseudonymised copy, as a pseudonymised sync writes it."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from esms_analytics import lake as lake_module
from esms_analytics import read_lake, reports
from esms_analytics.cli import main
from esms_analytics.convert import pseudonymise_lake
from esms_analytics.lake import partition_files
from esms_analytics.privacy.policy import KEY_VARIABLE, PrivacyPolicy
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

from .conftest import NOW
from .s3 import S3Server
from .test_privacy_lake import KEY, OTHER_KEY, Lakes, lakes, leaks, phone_forms

__all__ = ["lakes"]  # the module's fixture, shared: the same raw and pseudonymised days

POLICY = PrivacyPolicy("pseudonymised", key=KEY)


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder under ``folder``: its digest, its mode and its mtime."""
    found = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        found[str(path.relative_to(folder))] = (digest, stat.st_mode, stat.st_mtime_ns)
    return found


def windows(lake: Path) -> dict[str, tuple[object, ...]]:
    """What the manifest says of each window, less the requests its sync happened to send."""
    data = json.loads((lake / "_manifest.json").read_text("utf-8"))
    return {
        key: (entry["fetched_at"], entry["rows"], entry["count_total"], entry["settled"])
        for key, entry in data["windows"].items()
    }


def file_rows(lake: Path) -> dict[str, pl.DataFrame]:
    """Each data file's rows, in the file's own order."""
    return {file.key: pl.read_parquet(lake / file.key) for file in partition_files(lake)}


def test_a_conversion_writes_what_a_pseudonymised_sync_writes(
    lakes: Lakes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    before = snapshot(lakes.raw)
    copy = tmp_path / "copy"

    assert main(["lake", "pseudonymise", "--lake", str(lakes.raw), "--to", str(copy)]) == 0

    line = capsys.readouterr().err.strip()
    assert line.startswith(f"{copy}: {len(windows(lakes.raw))} windows pseudonymised from")
    # Row for row, file for file, in each file's order: the sync's lake.
    synced, converted = file_rows(lakes.pseudonymised), file_rows(copy)
    assert sorted(converted) == sorted(synced)
    for key, rows in synced.items():
        assert_frame_equal(converted[key], rows)
    # The source's windows, fetch times included; what the sync of the same days recorded.
    assert windows(copy) == windows(lakes.raw)
    assert {key: entry[1:] for key, entry in windows(copy).items()} == {
        key: entry[1:] for key, entry in windows(lakes.pseudonymised).items()
    }
    assert_frame_equal(
        read_lake(copy).collect().sort("sms_id"),
        read_lake(lakes.pseudonymised).collect().sort("sms_id"),
    )
    manifest = json.loads((copy / "_manifest.json").read_text("utf-8"))
    assert manifest["privacy"] == "pseudonymised"
    assert manifest["pseudonym_key_fingerprint"] == POLICY.fingerprint
    for file in partition_files(copy):
        facts = pq.read_metadata(copy / file.key).metadata
        assert facts[b"esms_analytics.privacy"] == b"pseudonymised"
    assert leaks(copy, phone_forms(lakes.phones)) == []
    assert KEY.encode() not in b"".join(p.read_bytes() for p in copy.rglob("*") if p.is_file())
    assert_frame_equal(reports.unique_recipients(copy), reports.unique_recipients(lakes.raw))
    # The source was only read: no byte, mode or time of it changed, no lock was left.
    assert snapshot(lakes.raw) == before


def test_a_second_conversion_copies_only_what_the_source_fetched_since(
    tmp_path: Path,
) -> None:
    raw, copy = tmp_path / "raw", tmp_path / "copy"
    first, last = NOW.date() - timedelta(days=5), NOW.date() - timedelta(days=1)
    with Simulator(now=NOW, days=10, daily_volume=40, seed=5) as sim, sim.client() as client:
        now = sim.clock.now()
        sync(raw, first, last - timedelta(days=1), client=client, progress=False, now=now)
        done = pseudonymise_lake(raw, copy, privacy=POLICY)
        assert (done.windows, done.current) == (4 * 7, 0)
        untouched = snapshot(copy / "sms")

        again = pseudonymise_lake(raw, copy, privacy=POLICY)
        assert (again.windows, again.files, again.current) == (0, 0, 4 * 7)
        assert snapshot(copy / "sms") == untouched

        # The next night: one more day, and the last one refreshed.
        later = now + timedelta(days=1)
        sync(
            raw,
            last - timedelta(days=1),
            last,
            client=client,
            progress=False,
            now=later,
            refresh=True,
        )
    nightly = pseudonymise_lake(raw, copy, privacy=POLICY)
    assert (nightly.windows, nightly.current) == (2 * 7, 3 * 7)
    assert windows(copy) == windows(raw)
    expected = POLICY.pseudonymise(read_lake(raw).drop("date").collect())
    assert_frame_equal(
        read_lake(copy).drop("date").collect().sort("sms_id", "sms_type"),
        expected.sort("sms_id", "sms_type"),
    )


def test_a_conversion_streams_row_group_by_row_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, copy = tmp_path / "raw", tmp_path / "copy"
    monkeypatch.setattr(lake_module, "ROW_GROUP_ROWS", 16)  # the source's files: many groups
    with Simulator(now=NOW, days=5, daily_volume=400, seed=3) as sim, sim.client() as client:
        sync(
            raw,
            NOW.date() - timedelta(days=2),
            NOW.date() - timedelta(days=1),
            client=client,
            progress=False,
        )
    largest = max(partition_files(raw), key=lambda file: file.size)
    assert pq.ParquetFile(raw / largest.key).num_row_groups > 3
    batches: list[int] = []
    pseudonymise = PrivacyPolicy.pseudonymise

    def counted(self: PrivacyPolicy, frame: pl.DataFrame) -> pl.DataFrame:
        batches.append(frame.height)
        return pseudonymise(self, frame)

    monkeypatch.setattr(PrivacyPolicy, "pseudonymise", counted)
    done = pseudonymise_lake(raw, copy, privacy=POLICY)
    assert max(batches) <= 16
    assert sum(batches) == done.rows == read_lake(raw).collect().height


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no key", f"set {KEY_VARIABLE}"),
        ("short key", "needs at least 16"),
        ("the source itself", "overlap"),
        ("inside the source", "overlap"),
        ("a folder of other files", "is not empty and not a lake"),
        ("a raw lake", "holds raw rows"),
        ("a copy under another key", "is not the key the lake"),
        ("a pseudonymised source", "is pseudonymised already"),
    ],
)
def test_a_refused_conversion_says_why_in_one_line_and_writes_nothing(
    lakes: Lakes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    source, destination = lakes.raw, tmp_path / "copy"
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    if case == "no key":
        monkeypatch.delenv(KEY_VARIABLE)
    elif case == "short key":
        monkeypatch.setenv(KEY_VARIABLE, "short")
    elif case == "the source itself":
        destination = lakes.raw
    elif case == "inside the source":
        destination = lakes.raw / "private"
    elif case == "a folder of other files":
        destination.mkdir()
        (destination / "notes.txt").write_text("mine")
    elif case == "a raw lake":
        shutil.copytree(lakes.raw, destination)
    elif case == "a copy under another key":
        shutil.copytree(lakes.pseudonymised, destination)
        monkeypatch.setenv(KEY_VARIABLE, OTHER_KEY)
    else:
        source = lakes.pseudonymised
    before = {folder: snapshot(folder) for folder in (lakes.raw, lakes.pseudonymised)}
    existed = snapshot(destination) if destination.exists() else None

    code = main(["lake", "pseudonymise", "--lake", str(source), "--to", str(destination)])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert message in err
    assert KEY not in err
    assert OTHER_KEY not in err
    assert {folder: snapshot(folder) for folder in before} == before
    assert (snapshot(destination) if destination.exists() else None) == existed


def test_a_damaged_source_file_is_named_and_the_copy_keeps_none_of_it(
    lakes: Lakes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    raw, copy = tmp_path / "raw", tmp_path / "copy"
    shutil.copytree(lakes.raw, raw)
    damaged = max(partition_files(raw), key=lambda file: file.size)
    data = (raw / damaged.key).read_bytes()
    # The footer whole, a page in the middle overwritten: found only reading the pages.
    middle = len(data) // 2
    (raw / damaged.key).write_bytes(data[:middle] + b"\xff" * 64 + data[middle + 64 :])
    monkeypatch.setenv(KEY_VARIABLE, KEY)

    code = main(["lake", "pseudonymise", "--lake", str(raw), "--to", str(copy)])

    err = capsys.readouterr().err
    assert code == 5, err
    assert damaged.key.split("/part-0")[0] in err
    assert not (copy / damaged.key).exists()
    assert [path for path in copy.rglob("*") if path.name.startswith(".")] == []


def test_a_bucket_copy_of_a_local_lake(
    lakes: Lakes, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    options = [
        f"--storage-option={key}={value}" for key, value in s3_server.storage_options().items()
    ]
    url = f"s3://{s3_bucket}/private"

    assert main(["lake", "pseudonymise", "--lake", str(lakes.raw), "--to", url, *options]) == 0

    remote = read_lake(url, storage_options=s3_server.storage_options()).collect()
    assert_frame_equal(
        remote.sort("sms_id"), read_lake(lakes.pseudonymised).collect().sort("sms_id")
    )
    stored = s3_server.keys(s3_bucket)
    forms = phone_forms(lakes.phones)
    assert [key for key, body in stored.items() if any(form in body for form in forms)] == []
