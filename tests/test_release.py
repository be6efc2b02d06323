"""The release: one version everywhere, and the lake's schema_version rule."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import esms_analytics
from esms_analytics._version import __version__
from esms_analytics.cli import main
from esms_analytics.client import EsmsClient
from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_has_one_source_of_truth() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "esms_analytics._version.__version__"}
    assert esms_analytics.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_the_changelog_keeps_a_changelog_and_names_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert "Keep a Changelog" in text
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)
    assert releases, "no released version in CHANGELOG.md"
    assert releases[0][0] == __version__, "the newest release in CHANGELOG.md is not _version.py's"
    assert releases[-1][0] == "0.1.0"
    assert text.index("## [Unreleased]") < text.index(f"## [{__version__}]")
    dates = [day for _, day in releases]
    assert dates == sorted(dates, reverse=True)


def test_the_cli_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"esms-analytics {__version__}\n"


def test_every_file_and_the_manifest_say_which_version_wrote_them(
    sim: Simulator, client: EsmsClient, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    end = sim.today - timedelta(days=1)
    sync(lake, end - timedelta(days=1), end, client=client, progress=False)
    files = sorted(lake.glob("sms/**/part-0.parquet"))
    assert files
    for file in files:
        metadata = pq.read_schema(file).metadata
        assert metadata[b"esms_analytics.writer_version"] == __version__.encode()
        assert metadata[b"esms_analytics.schema_version"] == b"1"
    manifest = json.loads((lake / "_manifest.json").read_text("utf-8"))
    assert manifest["writer_version"] == __version__


def _claim_newer_schema(lake: Path) -> None:
    path = lake / "_manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    manifest["schema_version"] = "99"
    path.write_text(json.dumps(manifest), "utf-8")


def test_a_lake_newer_than_the_release_is_read_with_a_warning_and_never_written(
    sim: Simulator, client: EsmsClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = tmp_path / "lake"
    end = sim.today - timedelta(days=1)
    sync(lake, end, end, sms_types=[2], client=client, progress=False)
    _claim_newer_schema(lake)
    before = {path: path.read_bytes() for path in lake.rglob("*") if path.is_file()}
    assert esms_analytics.read_lake(lake).collect().height > 0
    assert esms_analytics.lake_info(lake).windows.height > 0
    assert "schema_version 99 is newer" in caplog.text
    with pytest.raises(esms_analytics.NewerLakeError, match="upgrade"):
        sync(lake, end, end, sms_types=[2], client=client, progress=False, refresh=True)
    after = {path: path.read_bytes() for path in lake.rglob("*") if path.is_file()}
    assert after == before


def test_the_cli_refuses_to_write_to_a_newer_lake_with_one_line_and_exit_5(
    sim: Simulator,
    client: EsmsClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lake = tmp_path / "lake"
    end = sim.today - timedelta(days=1)
    sync(lake, end, end, sms_types=[2], client=client, progress=False)
    _claim_newer_schema(lake)
    monkeypatch.setenv("ESMS_API_KEY", sim.api_key)
    monkeypatch.setenv("ESMS_SECRET_KEY", sim.secret_key)
    monkeypatch.setenv("ESMS_BASE_URL", sim.base_url)
    argv = ["sync", "--lake", str(lake), "--from", str(end), "--to", str(end), "--quiet"]
    assert main([*argv, "--refresh"]) == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "schema_version 99" in err[0]
    assert "nothing was written" in err[0]
