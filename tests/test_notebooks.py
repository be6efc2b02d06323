"""The notebooks run top to bottom against the simulator, as committed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_are_committed() -> None:
    assert [path.stem for path in NOTEBOOKS] == [
        "01_quickstart",
        "02_delivery_by_campaign",
        "03_costs",
        "04_lake_in_other_engines",
    ]


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    committed_outputs = sum(len(cell.get("outputs", [])) for cell in notebook.cells)
    assert committed_outputs > 0, "commit notebooks with their outputs (make notebooks)"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    # Raises CellExecutionError, naming the cell, if any cell fails.
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert errors == []
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    if "delivery" in path.stem or "costs" in path.stem:
        assert images, "the plots should render inline"
