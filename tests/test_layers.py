"""The layers of the package, read from the source with ``ast`` (nothing here imports sepclean).

From the bottom: the core (formats, audio, scorers, attribution, embeddings, then ``pipeline/``'s
stages, which use them and are used by none of them) talks to toolkits only through the
``sepclean.toolkits`` entry points, so it neither imports ``sepclean_plugins`` nor names a toolkit
in its code; the dora main (``sepclean/train.py``) runs one XP with the stages;
``sepclean/experiments/`` runs grids of XPs and reads their results; the CLI (``sepclean/cli.py``,
``sepclean/commands/``) is on top.

"Imports" counts every import statement, lazy ones in functions included: none of these holds only
because an import is deferred. An edge goes to the most specific module an import names
(``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``), not to the packages above it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sepclean"
TOOLKITS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["sepclean.toolkits"])
TOOLKIT_LITERALS = {
    ("sepclean/scorers/reference.py", "openunmix"): "the default of a setting the user can change",
    ("sepclean/train.py", "demucs"): "the folder the dora main gives toolkits as their workspace; existing "
                                     "grids keep their Demucs XPs there",
}
"""Where the core spells a toolkit's name, and why that is not a branch on the toolkit."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str) -> set[str]:
    """The modules ``module`` imports, by full name (other packages' included)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        if not isinstance(node, ast.ImportFrom):
            continue
        base = node.module or ""
        if node.level:
            parent = package.rsplit(".", node.level - 1)[0]
            base = f"{parent}.{base}" if base else parent
        for alias in node.names:
            names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return names


def within(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


CLI = ("sepclean.cli", "sepclean.__main__", "sepclean.commands")
EXPERIMENTS = "sepclean.experiments"
CORE = [m for m in MODULES if not within(m, *CLI, EXPERIMENTS)]
"""Everything below the experiments and the CLI, the dora main included."""


def test_the_layers_are_found():
    assert {"sepclean.pipeline.stages", "sepclean.embeddings.clap", "sepclean.scores", "sepclean.train"} <= set(CORE)
    assert "sepclean.experiments.local_grid" in MODULES and "sepclean.commands.grid" in MODULES
    assert {"openunmix", "demucs"} <= TOOLKITS


@pytest.mark.parametrize("module", [m for m in MODULES if within(m, "sepclean.pipeline")])
def test_the_pipeline_holds_stages_only(module):
    above = {name for name in imported(module) if within(name, EXPERIMENTS, "sepclean.train", *CLI)}
    assert not above, f"{module} imports {sorted(above)}, on a layer above the stages"


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_toolkit_and_nothing_above_it(module):
    plugins = {name for name in imported(module) if within(name, "sepclean_plugins")}
    assert not plugins, f"{module} imports {sorted(plugins)}: the core reaches toolkits by entry points"
    above = {name for name in imported(module) if within(name, EXPERIMENTS, *CLI)}
    assert not above, f"{module} imports {sorted(above)}, on a layer above it"


@pytest.mark.parametrize("module", [m for m in CORE if not within(m, "sepclean.pipeline", "sepclean.train")])
def test_the_methods_and_below_import_no_stage(module):
    above = {name for name in imported(module) if within(name, "sepclean.pipeline", "sepclean.train")}
    assert not above, f"{module} imports {sorted(above)}: the stages use the methods, not the other way round"


def docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string constants that document (first statement of a body, or after an assignment)."""
    ids = set()
    for node in ast.walk(tree):
        for body in (getattr(node, field, None) for field in ("body", "orelse", "finalbody")):
            if isinstance(body, list):
                ids.update(id(stmt.value) for stmt in body
                           if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))
    return ids


@pytest.mark.parametrize("module", CORE)
def test_the_core_names_no_toolkit(module):
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    documenting = docstrings(tree)
    where = str(path.relative_to(ROOT))
    named = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documenting
             and node.value.lower() in TOOLKITS and (where, node.value.lower()) not in TOOLKIT_LITERALS}
    assert not named, f"{where} names the toolkit(s) {sorted(named)}: ask the adapter (sepclean.toolkit) instead"


def test_no_import_cycle_among_sepclean_modules():
    graph = {module: sorted(name for name in imported(module) if name in MODULES and name != module)
             for module in MODULES}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for name in graph[module]:
            if state.get(name) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(name):] + [name]))
            if name not in state:
                visit(name)
        stack.pop()
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module)
