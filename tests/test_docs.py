"""docs/: the API reference lists every public name, and the user guide's code runs.

The site itself is built (with warnings as errors) by `.ci/run`; these tests
check that a public name added to ``fastsoftmax.__all__`` (or to the public
submodules documented name by name) gets a page, and run the
``.. code-block:: python`` blocks of the user guide and the front page.
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


PAGES = sorted((API.parent / "user_guide").glob("*.rst")) + [API.parent / "index.rst"]


def _python_blocks(page):
    """The code of each ``.. code-block:: python`` of an rst page, dedented."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        indent, body = len(line) - len(line.lstrip()) + 3, []
        for following in lines[i + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) < indent:
                break
            body.append(following[indent:])
        blocks.append("\n".join(body).strip("\n"))
    return blocks


@pytest.mark.skipif(not API.is_file(), reason="docs/ is not here (an installed wheel)")
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.stem)
def test_user_guide_code_runs(page, tmp_path, monkeypatch):
    # the blocks of one page run in order in one namespace, as a reader would run them
    pytest.importorskip("sklearn")  # the digits data set
    monkeypatch.chdir(tmp_path)
    import fastsoftmax

    namespace = {"__name__": "__docs__"}
    try:
        for code in _python_blocks(page):
            exec(compile(code, str(page), "exec"), namespace)
    finally:
        fastsoftmax.set_backend(None)
        fastsoftmax.set_num_threads(None)
