"""Pseudonymised Delta and Iceberg lakes (#20 with #22): the Hive lake's rows, no phone, the key kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from esms_analytics import reports
from esms_analytics.lake import PSEUDONYMISED_LAKE_SCHEMA, read_lake
from esms_analytics.privacy.policy import KEY_VARIABLE, PrivacyPolicy
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync
from esms_analytics.tables import open_table

from .conftest import NOW
from .test_privacy_lake import (
    FIRST,
    KEY,
    LAST,
    OTHER_KEY,
    _snapshot,
    _sync,
    leaks,
    phone_forms,
    refusals,
    truth_phones,
)

FORMATS = pytest.mark.parametrize("table_format", ["delta", "iceberg"])
#: A row's identity, then the columns that order rows sharing it (a blast's copies).
ORDER = ["sms_type", "date", "sms_id", "reference_id", "sent_at", "phone_token", "content"]


@pytest.fixture
def env(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return sim


@FORMATS
def test_a_pseudonymised_table_holds_the_hive_lakes_rows_and_no_phone(
    sim: Simulator, tmp_path: Path, table_format: str
) -> None:
    policy = PrivacyPolicy("pseudonymised", key=KEY)
    hive, lake = tmp_path / "hive", tmp_path / table_format
    with sim.client() as client:
        options = {"client": client, "progress": False, "now": NOW, "privacy": policy}
        sync(hive, FIRST, LAST, **options)  # type: ignore[arg-type]
        report = sync(lake, FIRST, LAST, table_format=table_format, **options)  # type: ignore[arg-type]
    assert report.complete
    rows = read_lake(lake).collect()
    assert rows.schema == PSEUDONYMISED_LAKE_SCHEMA
    assert rows.height > 100
    assert_frame_equal(rows.sort(ORDER), read_lake(hive).collect().sort(ORDER))
    # Every byte: the table's data files, its log or metadata (Delta's column statistics,
    # Iceberg's manifests), the SQLite catalog, the manifest.
    forms = phone_forms(truth_phones(sim, FIRST, LAST))
    assert len(forms) > 100
    assert leaks(lake, forms) == []
    assert leaks(lake, {KEY.encode()}) == []
    table = open_table(lake)
    assert table is not None
    # The commit records the policy and the key's fingerprint, never the key.
    facts = table.lake_facts()
    assert facts.items() >= policy.facts().items()
    assert facts["pseudonym_key_fingerprint"] == policy.fingerprint
    assert reports.unique_recipients(lake).rows() == reports.unique_recipients(hive).rows()


@FORMATS
def test_a_pseudonymised_table_keeps_its_key_and_versions_without_its_manifest(
    env: Simulator,
    tmp_path: Path,
    table_format: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, "--privacy", "pseudonymised", "--table-format", table_format) == 0
    # The lake's own policy and key without --privacy: a second commit.
    assert _sync(env, lake, "--refresh") == 0
    table = open_table(lake)
    assert table is not None
    assert table.version() == 1
    assert read_lake(lake, version=0).collect().schema == PSEUDONYMISED_LAKE_SCHEMA
    # The manifest is lost: the table's commits still say the policy and the key.
    (lake / "_manifest.json").unlink()
    shutil.rmtree(lake / "_manifest.d", ignore_errors=True)
    before = _snapshot(lake)
    refused = refusals(env, lake, capsys)
    # Readers still read it: a table lake is its marker and its table.
    assert read_lake(lake).collect().schema == PSEUDONYMISED_LAKE_SCHEMA
    assert _snapshot(lake) == before
    assert "is pseudonymised" in refused("--privacy", "raw")
    monkeypatch.setenv(KEY_VARIABLE, OTHER_KEY)
    err = refused()
    assert "not the key" in err
    assert OTHER_KEY not in err
    assert KEY not in err
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    assert _sync(env, lake, "--refresh") == 0
    assert table.version() == 2
    assert read_lake(lake).collect().schema == PSEUDONYMISED_LAKE_SCHEMA


@FORMATS
def test_a_raw_table_without_its_manifest_refuses_pseudonymised_rows(
    env: Simulator, tmp_path: Path, table_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, "--table-format", table_format, days=2) == 0
    table = open_table(lake)
    assert table is not None
    assert table.lake_facts()["privacy"] == "raw"
    assert "pseudonym_key_fingerprint" not in table.lake_facts()
    (lake / "_manifest.json").unlink()
    capsys.readouterr()
    before = _snapshot(lake)
    assert _sync(env, lake, "--refresh", "--privacy", "pseudonymised", days=2) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert "is raw" in err
    assert _snapshot(lake) == before


@FORMATS
def test_a_table_lake_is_not_converted_and_the_refusal_says_what_to_run(
    env: Simulator, tmp_path: Path, table_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from esms_analytics.cli import main

    raw, pseudonymised = tmp_path / "raw", tmp_path / "pseudonymised"
    assert _sync(env, raw, "--table-format", table_format, days=1) == 0
    assert _sync(env, pseudonymised, "--table-format", table_format, "--privacy",
                 "pseudonymised", days=1) == 0  # fmt: skip
    capsys.readouterr()
    for lake, expected in (
        (raw, f"--table-format {table_format} --privacy pseudonymised"),
        (pseudonymised, "pseudonymised already"),
    ):
        assert main(["lake", "pseudonymise", "--lake", str(lake), "--to", str(tmp_path / "x")]) == 2
        _, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1, err
        assert expected in err
    assert not (tmp_path / "x").exists()


@FORMATS
def test_a_table_that_lost_its_marker_too_is_not_taken_for_a_new_hive_lake(
    env: Simulator,
    tmp_path: Path,
    table_format: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    assert _sync(env, lake, "--privacy", "pseudonymised", "--table-format", table_format) == 0
    marker = (lake / "_table.json").read_bytes()
    for lost in ("_manifest.json", "_table.json"):
        (lake / lost).unlink()
    shutil.rmtree(lake / "_manifest.d", ignore_errors=True)
    capsys.readouterr()
    before = _snapshot(lake)
    monkeypatch.setenv(KEY_VARIABLE, OTHER_KEY)
    assert _sync(env, lake, "--refresh") == 5
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert "_table.json" in err
    assert marker.decode() in err
    assert _snapshot(lake) == before
    assert not (lake / "sms").exists()
    # With its marker back, the lake's policy and key are checked again.
    (lake / "_table.json").write_bytes(marker)
    assert _sync(env, lake, "--refresh") == 2
    assert "not the key" in capsys.readouterr().err
