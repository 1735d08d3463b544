"""The minimum-versions CI run pins exactly the floors that pyproject.toml declares.

``.ci/check-min-versions`` installs ``.ci/min-versions.txt`` on the oldest supported Python
and runs the suite; these tests keep that file, the script's Python and pyproject.toml's
floors (build requirements, requires-python, dependencies, the ``test`` extra) in step.
"""

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest brings tomli there
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / ".ci" / "min-versions.txt").is_file(), reason="not a source tree"
)


def floors(requirements):
    """{normalised name: floor} of requirements written 'name>=floor'."""
    result = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement)
        if match:
            result[match.group(1).lower().replace("_", "-")] = match.group(2)
    return result


@pytest.fixture(scope="module")
def pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def pins():
    result = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            result[name.strip().lower()] = version.strip()
    return result


def test_every_floor_is_pinned_exactly(pyproject, pins):
    project = pyproject["project"]
    declared = {
        **floors(pyproject["build-system"]["requires"]),
        **floors(project["dependencies"]),
        **floors(project["optional-dependencies"]["test"]),
    }
    assert declared, "no floors found in pyproject.toml"
    for name, floor in declared.items():
        assert name in pins, f"{name}>={floor} has no pin in .ci/min-versions.txt"
        # a floor "1.24" is the release 1.24.0
        assert pins[name].split(".") == (floor.split(".") + ["0"] * 3)[: len(pins[name].split("."))], (
            f"{name}: pyproject.toml says >={floor}, .ci/min-versions.txt pins {pins[name]}"
        )
    assert set(pins) == set(declared), f"pins without a floor: {set(pins) - set(declared)}"


def test_the_script_uses_the_oldest_supported_python(pyproject):
    requires = pyproject["project"]["requires-python"]
    script = (ROOT / ".ci" / "check-min-versions").read_text()
    match = re.search(r"^min_python_version=(\S+)", script, re.MULTILINE)
    assert match and requires == f">={match.group(1)}", (requires, match and match.group(1))
    classifiers = pyproject["project"]["classifiers"]
    assert f"Programming Language :: Python :: {match.group(1)}" in classifiers
