"""The API reference of docs/ lists every public name of the package.

The site itself is built (with warnings as errors) by `.ci/run`; this only
checks that a public name added to ``fastsoftmax.__all__`` (or to the public
submodules documented name by name) gets a page.
"""

import importlib
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"
# submodules that the reference documents through their own names
SUBMODULES = ("fastsoftmax.learners", "fastsoftmax.datasets", "fastsoftmax.plotting")
# public names that are not callables worth a page of their own
NOT_DOCUMENTED = {
    "fastsoftmax": {"functions", "estimators", "learners", "trainer", "datasets", "persistence"},
    "fastsoftmax.learners": {"LEARNERS", "LEARNER_TABLE", "SCHEDULES"},
    "fastsoftmax.datasets": {"MIRRORS", "MNIST_FILES", "Bunch", "DataNotFoundError", "IDXError"},
    "fastsoftmax.plotting": set(),
}


def _documented():
    """{module: names listed in the autosummary blocks under its currentmodule}."""
    documented, module = {}, None
    for line in API.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\.\. currentmodule:: (\S+)", line)
        if match:
            module = match.group(1)
        elif module and re.match(r"   [A-Za-z_]\w*$", line):
            documented.setdefault(module, set()).add(line.strip())
    return documented


@pytest.mark.skipif(not API.is_file(), reason="docs/ is not here (an installed wheel)")
@pytest.mark.parametrize("module_name", ["fastsoftmax", *SUBMODULES])
def test_api_reference_lists_every_public_name(module_name):
    module = importlib.import_module(module_name)
    public = set(module.__all__) - NOT_DOCUMENTED[module_name]
    documented = _documented().get(module_name, set())
    assert sorted(public - documented) == [], f"add these to docs/api.rst ({module_name})"
    assert sorted(documented - set(module.__all__)) == [], "docs/api.rst lists names that are gone"
