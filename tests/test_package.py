"""The public surface: exports, import cost, module boundaries."""

from __future__ import annotations

import subprocess
import sys

import esms_analytics


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(esms_analytics).items()
        if not name.startswith("_") and not isinstance(value, type(sys)) and name != "annotations"
    }
    assert set(esms_analytics.__all__) == public
    assert len(set(esms_analytics.__all__)) == len(esms_analytics.__all__)
    # The order is ruff's RUF022 (constants, classes, functions), checked by `make lint`.


def test_importing_the_package_loads_no_matplotlib_and_no_simulator() -> None:
    code = (
        "import sys, esms_analytics\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tqdm')"
        " or m in ('esms_analytics.cli', 'esms_analytics.simulator', 'esms_analytics.plots')]\n"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_library_modules_never_import_the_edges() -> None:
    import pathlib
    import re

    package = pathlib.Path(esms_analytics.__file__).parent
    for module in package.glob("*.py"):
        if module.stem in ("cli", "demo", "__main__"):
            continue
        text = module.read_text("utf-8")
        assert not re.search(
            r"^\s*(from|import) esms_analytics\.(cli|simulator)\b", text, re.MULTILINE
        ), module.name
        if module.stem != "plots":
            assert not re.search(r"^\s*(from|import) matplotlib", text, re.MULTILINE), module.name
