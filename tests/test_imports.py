"""The import graph of simcomp flows one way.

Every ``import`` statement of every module (at the top or inside a function:
a lazy import is still a dependency) is read from the source with ``ast``.
The API (:mod:`simcomp.api`) is the facade: only the package itself and the
command line may import it; and no two simcomp modules import each other,
directly or through others (a cycle would make the order of imports matter).
"""

from __future__ import annotations

import ast
from pathlib import Path

import simcomp

ROOT = Path(simcomp.__file__).resolve().parent.parent
# Modules above the API: the package (its lazy names) and the command line.
ABOVE_API = {"simcomp", "simcomp.cli", "simcomp.api"}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """simcomp module -> the simcomp modules it imports (absolute and relative imports)."""
    files = {_module_of(p): p for p in (ROOT / "simcomp").rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                # ``import a.b.c`` runs a, a.b and a.b.c (each package's __init__ too)
                parts = name.split(".")
                deps.update(".".join(parts[:i]) for i in range(1, len(parts) + 1)
                            if ".".join(parts[:i]) in files)
        # A module's own parent packages are initialised before it, whatever it imports.
        parents = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        graph[mod] = deps - {mod} - parents
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_every_module_and_its_imports():
    graph = import_graph()
    assert {"simcomp", "simcomp.api", "simcomp.sweep", "simcomp.sweep.run",
            "simcomp.kernels.gd", "simcomp.theory.race"} <= set(graph)
    assert "simcomp.sweep.execute" in graph["simcomp.sweep"]  # relative, from the package
    assert "simcomp.api" in graph["simcomp"]
    assert "simcomp.sweep" in graph["simcomp.api"]  # a lazy import inside a function counts


def test_no_module_below_the_api_imports_it():
    offenders = sorted(mod for mod, deps in import_graph().items()
                       if "simcomp.api" in deps and mod not in ABOVE_API)
    assert offenders == []


def test_no_import_cycle_among_simcomp_modules():
    graph = import_graph()
    # A package's __init__ importing its own submodules is how packages work; a submodule
    # importing its parent package (above) would close a cycle and is counted.
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_cycles_are_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_simcomp_sweep_is_the_api_function_even_after_the_package_is_imported():
    import importlib
    import inspect
    import sys

    from simcomp import api

    package = importlib.import_module("simcomp.sweep")
    importlib.import_module("simcomp.sweep.run")
    assert simcomp.sweep is api.sweep and callable(simcomp.sweep)
    assert sys.modules["simcomp.sweep"] is package and package.plan_sweep is not None
    assert "grid" in inspect.signature(simcomp.sweep).parameters
    assert simcomp.sweep.__doc__ == api.sweep.__doc__
