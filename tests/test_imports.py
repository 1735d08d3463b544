"""Every module of the package imports on its own; the modules import each other without circles."""

import ast
import importlib.util
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastsoftmax

PACKAGE = "fastsoftmax"


def _modules():
    """Every module and subpackage of the installed package (compiled extensions too)."""
    names = [PACKAGE]
    names += [m.name for m in pkgutil.walk_packages(fastsoftmax.__path__, f"{PACKAGE}.")]
    return sorted(set(names))


MODULES = _modules()
#: the message of the fallback install's fastsoftmax/_cython_kernels.py (see pyproject.toml)
COMPILED_MISSING = "fastsoftmax was installed without its compiled kernels"


def test_the_walk_finds_the_package():
    # the walk itself must work, or the tests below would pass on nothing
    for name in ("fastsoftmax.estimators._softmax", "fastsoftmax._backends.numba_epoch"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_alone(name):
    """``python -c "import <name>"`` in a fresh interpreter succeeds."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=300
    )
    if result.returncode and COMPILED_MISSING in result.stderr:
        # the fallback install's stand-in for the compiled kernels refuses import by design
        pytest.skip(f"{name} needs the compiled kernels, which this install lacks")
    assert result.returncode == 0, f"import {name} failed:\n{result.stderr}"


# ----------------------------------------------------------------------------- import circles


def _source_modules():
    """Module name -> path of its Python source, for the modules with one."""
    sources = {}
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            sources[name] = Path(spec.origin)
    return sources


def _resolve(module, is_package, node, known):
    """The package modules an ``import`` or ``from ... import`` statement imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        parts = module.split(".")
        base = parts if is_package else parts[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module
    # "from a import b": the submodule a.b if there is one, else a name defined in a
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]


def import_graph(sources):
    """Module -> the package modules it imports anywhere in its source (lazy imports too).

    A lazy import inside a function still ties the two modules together, so
    it counts: a circle of lazy imports is a circle of the design.
    """
    graph = {}
    known = set(sources) | set(MODULES)
    for module, path in sources.items():
        is_package = path.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = _resolve(module, is_package, node, known)
                targets.update(n for n in names if n in known)
        # importing a submodule first imports its parent package: that is no circle
        graph[module] = {t for t in targets if t != module and not module.startswith(t + ".")}
    return graph


def find_cycles(graph):
    """The elementary circles of ``graph`` found by depth-first search, each listed once."""
    cycles, seen = [], set()
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    path = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt, 2) == 1:
                cycle = path[path.index(nxt) :]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle + [nxt])
            elif state.get(nxt) == 0:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node)
    return cycles


def test_find_cycles_finds_a_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_resolves_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from .estimators import _base\nfrom . import persistence\n")
    graph = import_graph({"fastsoftmax.x": source, **_source_modules()})
    assert graph["fastsoftmax.x"] == {"fastsoftmax.estimators._base", "fastsoftmax.persistence"}


def test_no_import_circles():
    cycles = find_cycles(import_graph(_source_modules()))
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)
