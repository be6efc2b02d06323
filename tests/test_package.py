"""The public surface: exports, import cost, module boundaries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import esms_analytics


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name in dir(esms_analytics)
        if not name.startswith("_")
        and not isinstance(getattr(esms_analytics, name), type(sys))
        and name != "annotations"
    }
    assert set(esms_analytics.__all__) == public
    assert len(set(esms_analytics.__all__)) == len(esms_analytics.__all__)
    # The order is ruff's RUF022 (constants, classes, functions), checked by `make lint`.


def test_importing_the_package_loads_no_matplotlib_no_simulator_no_cloud_client_no_extra() -> None:
    code = (
        "import sys, esms_analytics\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tqdm', 'obstore')"
        " or m.split('.')[0] in ('dlt', 'deltalake', 'pyiceberg')"
        " or m in ('esms_analytics.cli', 'esms_analytics.simulator', 'esms_analytics.plots')]\n"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


#: Which of the package's modules each module may import: the house's floors, read from
#: the bottom up. Function-level imports count; imports only for type checkers do not.
#: An import not in this table (an arrow running back up, or a new one) fails the test:
#: decide where the code belongs, then change the table on purpose.
ALLOWED_IMPORTS: dict[str, set[str]] = {
    "_version": set(),
    "errors": set(),
    "codes": set(),
    "wire": set(),
    "files": set(),
    "render": {"errors", "files"},
    "plots": {"errors", "files", "registry", "reports"},
    "arguments": {"codes", "errors"},
    "client": {"arguments", "codes", "errors", "wire"},
    "decode": {"codes", "errors", "wire"},
    "reports": {"arguments", "codes", "errors", "lake", "privacy.text"},
    "registry": {"errors", "reports"},
    "windows": {"arguments", "client", "decode", "errors", "wire"},
    "store": {"errors", "files"},
    "tables": {"codes", "decode", "errors", "files", "store"},
    "tables.delta": {"errors", "tables"},
    "tables.iceberg": {"errors", "files", "tables"},
    "lake": {
        "_version",
        "arguments",
        "codes",
        "decode",
        "errors",
        "files",
        "privacy.policy",
        "store",
        "tables",
    },
    "manifest": {"_version", "errors", "lake", "privacy.policy", "store"},
    "check": {"codes", "errors", "lake", "manifest", "store", "tables"},
    "probes": {"client", "errors"},
    "ops": set(),
    "ops.logs": {"errors"},
    "ops.summary": {"_version", "errors", "files", "ops.logs"},
    "sync": {
        "arguments",
        "client",
        "codes",
        "errors",
        "lake",
        "manifest",
        "privacy.policy",
        "probes",
        "store",
        "tables",
        "windows",
        "wire",
    },
    "convert": {"errors", "lake", "manifest", "privacy.policy", "store", "tables"},
    "bundle": {"codes", "errors", "plots", "registry", "render", "reports"},
    "privacy": set(),
    "privacy.text": set(),
    "privacy.policy": {"decode", "errors", "privacy.text"},
    "simulator.history": set(),
    "simulator.faults": {"simulator.history"},
    "simulator.server": {"simulator.history"},
    "simulator": {"client", "simulator.faults", "simulator.history", "simulator.server"},
    "demo": {"bundle", "errors", "lake", "manifest", "render", "simulator", "sync"},
    "__init__": {
        "_version",
        "check",
        "client",
        "convert",
        "decode",
        "errors",
        "lake",
        "privacy.policy",
        "reports",
        "store",
        "sync",
        "windows",
    },
    "cli": {
        "__init__",
        "arguments",
        "bundle",
        "check",
        "client",
        "codes",
        "convert",
        "demo",
        "errors",
        "files",
        "lake",
        "ops.logs",
        "ops.summary",
        "plots",
        "registry",
        "render",
        "simulator",
        "store",
        "sync",
        "tables",
        "windows",
    },
    "__main__": {"cli"},
    "dlt.source": {"arguments", "client", "codes", "errors", "lake", "sync", "windows", "wire"},
    "dlt": {"dlt.source"},
}


def _module_name(path: Path, package: Path) -> str:
    parts = path.with_suffix("").relative_to(package).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _typing_only(tree: ast.Module) -> set[ast.AST]:
    """Nodes under ``if TYPE_CHECKING:``: imports a type checker reads, never run."""
    nodes: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for child in node.body:
                nodes.update(ast.walk(child))
    return nodes


def _internal_imports(path: Path, package: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in it (functions included)."""
    tree = ast.parse(path.read_text("utf-8"))
    skipped = _typing_only(tree)
    modules = set(_module_name(p, package) for p in package.rglob("*.py"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "esms_analytics":
                # `from esms_analytics import x`: a submodule, or a name of the package face.
                found |= {n.name if n.name in modules else "__init__" for n in node.names}
            elif node.module.startswith("esms_analytics."):
                found.add(node.module.removeprefix("esms_analytics."))
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix("esms_analytics.")
                for alias in node.names
                if alias.name.startswith("esms_analytics.")
            }
    return found


def test_every_module_imports_only_what_its_floor_allows() -> None:
    package = Path(esms_analytics.__file__).parent
    seen = {}
    for path in sorted(package.rglob("*.py")):
        name = _module_name(path, package)
        seen[name] = _internal_imports(path, package)
    assert set(seen) == set(ALLOWED_IMPORTS), "a module was added or removed: give it a row"
    upward = {
        name: sorted(imports - ALLOWED_IMPORTS[name])
        for name, imports in seen.items()
        if imports - ALLOWED_IMPORTS[name]
    }
    assert upward == {}


def test_the_import_table_has_no_circle() -> None:
    def reach(start: str) -> set[str]:
        todo, found = [start], set()
        while todo:
            for name in ALLOWED_IMPORTS[todo.pop()]:
                if name not in found:
                    found.add(name)
                    todo.append(name)
        return found

    assert [name for name in ALLOWED_IMPORTS if name in reach(name)] == []


def test_only_plots_imports_matplotlib() -> None:
    package = Path(esms_analytics.__file__).parent
    for path in package.rglob("*.py"):
        if path.stem == "plots":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        names = {
            alias.name if isinstance(node, ast.Import) else node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        assert not any(name.split(".")[0] == "matplotlib" for name in names), path.name


def test_plots_and_simulator_load_on_first_use() -> None:
    code = (
        "import sys, esms_analytics\n"
        "before = 'esms_analytics.plots' in sys.modules or 'matplotlib' in sys.modules\n"
        "esms_analytics.plots.plot_delivery_by_campaign\n"
        "esms_analytics.simulator.Simulator\n"
        "print(before, 'matplotlib' in sys.modules, 'esms_analytics.simulator' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "True"]
