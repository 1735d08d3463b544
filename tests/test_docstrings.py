"""Run the doctests (the Examples sections) of every public module of the installed package."""

import doctest
import importlib
import importlib.util

import pytest

MODULES = [
    "fastsoftmax",
    "fastsoftmax.functions",
    "fastsoftmax._backends",
    "fastsoftmax._threads",
    "fastsoftmax.estimators",
    "fastsoftmax.estimators._logistic",
    "fastsoftmax.estimators._softmax",
    "fastsoftmax._epoch_driver",
    "fastsoftmax.learners",
    "fastsoftmax.trainer",
    "fastsoftmax.datasets",
    "fastsoftmax.persistence",
    "fastsoftmax.plotting",
    "fastsoftmax.cli",
]
# modules whose examples need an optional dependency
NEEDS = {"fastsoftmax.plotting": "matplotlib"}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, tmp_path, monkeypatch):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} does not exist (yet)")
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    for test in finder.find(module, name):  # globals: a copy of the module's, as testmod
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    # every public submodule documents itself with at least one runnable example
    # (the package's __init__ only re-exports, lazily)
    if name != "fastsoftmax":
        assert result.attempted > 0, f"{name} has no doctest examples"
