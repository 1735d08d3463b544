"""mypy on the package, with the configuration of pyproject.toml ([tool.mypy]).

Modules with type hints are checked strictly (every function annotated, bodies
checked); the rest are checked for what mypy infers without hints.  Runs from
the source tree only (the configuration lives there), in a subprocess (~20 s
cold, mypy caches in a temporary folder).
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mypy")
pytestmark = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file() or not (ROOT / "fastsoftmax").is_dir(),
    reason="not a source tree",
)


def test_mypy_passes_on_the_package(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", "-p", "fastsoftmax"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _mypy_overrides():
    """The [[tool.mypy.overrides]] tables of pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(ROOT / "pyproject.toml", "rb") as f:
        overrides = tomllib.load(f)["tool"]["mypy"]["overrides"]
    return overrides


def test_annotated_modules_are_checked_strictly():
    # a module listed as annotated gets disallow_untyped_defs: a new unannotated public
    # function there fails test_mypy_passes_on_the_package
    overrides = _mypy_overrides()
    strict = [o for o in overrides if o.get("disallow_untyped_defs")]
    assert strict and {
        "fastsoftmax", "fastsoftmax._threads", "fastsoftmax._backends", "fastsoftmax.cli",
        "fastsoftmax.datasets", "fastsoftmax.plotting", "fastsoftmax.trainer",
    } <= set(
        strict[0]["module"]
    )


def test_public_api_modules_are_checked_strictly():
    # the estimators, persistence and learners carry type hints on their public API
    overrides = _mypy_overrides()
    strict = {m for o in overrides if o.get("disallow_untyped_defs") for m in o["module"]}
    ignored = {m for o in overrides if o.get("ignore_errors") for m in o["module"]}
    public_api = {"fastsoftmax.estimators.*", "fastsoftmax.persistence", "fastsoftmax.learners"}
    assert public_api <= strict
    assert not public_api & ignored
