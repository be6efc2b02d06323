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
