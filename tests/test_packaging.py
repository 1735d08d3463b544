"""The installed distribution carries its license, its changelog's version and py.typed."""

import importlib.metadata
from pathlib import Path

import fastsoftmax

ROOT = Path(__file__).resolve().parent.parent


def _distribution():
    return importlib.metadata.distribution("fastsoftmax")


def test_license_expression_and_file_are_installed():
    dist = _distribution()
    assert dist.metadata["License-Expression"] == "BSD-3-Clause"
    licenses = [f for f in dist.files or () if f.name == "LICENSE"]
    assert licenses, "LICENSE is missing from the installed dist-info"
    assert "BSD 3-Clause License" in licenses[0].read_text(encoding="utf-8")


def test_package_is_marked_typed():
    # PEP 561: type checkers read the package's annotations only when py.typed is installed
    assert (Path(fastsoftmax.__file__).parent / "py.typed").is_file()
    assert "Typing :: Typed" in _distribution().metadata.get_all("Classifier")


def test_changelog_names_the_package_version():
    changelog = ROOT / "CHANGELOG.md"
    if not changelog.is_file():  # tests run against an installed wheel, outside a clone
        return
    assert f"## [{fastsoftmax.__version__}]" in changelog.read_text(encoding="utf-8")
    assert _distribution().version == fastsoftmax.__version__
