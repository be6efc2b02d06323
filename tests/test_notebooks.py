"""The notebooks: committed clean on the project's kernel, run top to bottom, on the user's lake."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from esms_analytics.simulator import Simulator
from esms_analytics.sync import sync

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: The kernel `make notebook` and `make test` register in the project's .venv.
KERNEL = "esms-analytics"
WIDGET = "application/vnd.jupyter.widget"
PROGRESS_BAR = re.compile(r"\d+/\d+ \[|it/s\]|\|█")
SCIENTIFIC = re.compile(r"\b\d\.\d+e[+-]?\d+\b")
#: The notebook whose cells run on Spark.
SPARK_NOTEBOOK = "04_lake_in_other_engines"


def test_the_five_notebooks_are_committed() -> None:
    assert [path.stem for path in NOTEBOOKS] == [
        "01_quickstart",
        "02_delivery_by_campaign",
        "03_costs",
        "04_lake_in_other_engines",
        "05_monday_morning",
    ]


def _outputs(notebook: Any) -> list[Any]:
    return [output for cell in notebook.cells for output in cell.get("outputs", [])]


def _shown_text(output: Any) -> str:
    data = output.get("data", {})
    return (
        str(output.get("text", ""))
        + str(data.get("text/plain", ""))
        + str(data.get("text/html", ""))
    )


def _assert_clean(notebook: Any) -> None:
    assert "widgets" not in notebook.metadata
    for output in _outputs(notebook):
        assert not any(kind.startswith(WIDGET) for kind in output.get("data", {}))
        assert not (output.output_type == "stream" and output.name == "stderr"), output
        text = _shown_text(output)
        assert not PROGRESS_BAR.search(text), text[:200]
        assert not SCIENTIFIC.search(text), SCIENTIFIC.search(text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebooks_are_clean_and_use_the_project_kernel(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata.kernelspec.name == KERNEL
    assert _outputs(notebook), "commit notebooks with their outputs (make notebooks)"
    _assert_clean(notebook)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    for call in re.findall(r"esms\.sync\((.*?)\)\n", source, re.DOTALL):
        assert "progress=False" in call
    if path.stem != "01_quickstart":
        assert 'Path("../data/lake")' in source


def _execute(path: Path, cwd: Path) -> Any:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    # Raises CellExecutionError, naming the cell, if any cell fails.
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name=notebook.metadata.kernelspec.name,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    assert [o for o in _outputs(notebook) if o.output_type == "error"] == []
    return notebook


def _run_param(path: Path) -> Any:
    if path.stem != SPARK_NOTEBOOK:
        return pytest.param(path, id=path.stem)
    # Its Spark cells reach the test run's one Spark session over Spark Connect.
    spark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]
    return pytest.param(path, id=path.stem, marks=spark)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", [_run_param(path) for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path.stem == SPARK_NOTEBOOK:
        # The kernel inherits it: `SparkSession.builder.getOrCreate()` connects there.
        monkeypatch.setenv("SPARK_REMOTE", request.getfixturevalue("spark_remote"))
    notebook = _execute(path, path.parent)
    images = [output for output in _outputs(notebook) if "image/png" in output.get("data", {})]
    if "delivery" in path.stem or "costs" in path.stem:
        assert images, "the plots should render inline"
    # Outputs as the notebook shows them: VND and rates as the reports format them.
    for output in _outputs(notebook):
        assert not SCIENTIFIC.search(_shown_text(output))
    if path.stem == SPARK_NOTEBOOK:
        _assert_spark_ran(notebook)


def _assert_spark_ran(notebook: Any) -> None:
    """Spark's cells ran for real: a table Spark computed, the same rows as Polars, no stderr."""
    spark_cells = [cell for cell in notebook.cells if "spark_report" in cell.source]
    assert len(spark_cells) == 2
    shown, compared = ("".join(_shown_text(o) for o in cell.outputs) for cell in spark_cells)
    assert "|carrier" in shown.replace(" ", "")
    assert "only showing top 5 rows" in shown
    assert compared.strip() == "True"
    for cell in spark_cells:
        assert not any(o.output_type == "stream" and o.name == "stderr" for o in cell.outputs)


@pytest.mark.notebook
@pytest.mark.slow
def test_the_monday_notebook_opens_the_demo_lake_when_there_is_one(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    notebook_path = next(path for path in NOTEBOOKS if path.stem == "05_monday_morning")
    shutil.copy(notebook_path, tmp_path / "notebooks")
    lake = tmp_path / "data" / "lake"
    with Simulator(days=15, daily_volume=120, seed=3) as sim, sim.client() as client:
        sync(lake, sim.today - timedelta(days=14), sim.today, client=client, progress=False)
    notebook = _execute(tmp_path / "notebooks" / notebook_path.name, tmp_path / "notebooks")
    printed = "".join(_shown_text(output) for output in _outputs(notebook))
    assert "the demo lake" in printed
    assert "a simulator lake" not in printed
    assert "cost ₫" in printed
