"""Sphinx configuration of the fastsoftmax documentation.

Build it from the root of a clone with::

    pip install ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

The API reference is generated from the docstrings of the installed package,
through its public top-level names (``fastsoftmax.softmax``, not the module
that happens to define it), so the pages do not move when the internals do.
The gallery runs the scripts of ``docs/examples`` on every build.
"""

import os
import subprocess
import sys
from pathlib import Path

import fastsoftmax

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # _gallery_scraper

project = "fastsoftmax"
author = "the fastsoftmax developers"
copyright = "2026, the fastsoftmax developers"
version = release = fastsoftmax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
# examples/ holds the gallery sources; sphinx-gallery writes auto_examples/ from them
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
html_theme = "alabaster"
html_static_path = []
html_title = f"fastsoftmax {release}"

# --- API reference ---
autosummary_generate = True
autodoc_default_options = {"members": True}
# The class template (_templates/autosummary/class.rst) lists the methods, also those
# of fastsoftmax's own base classes (not scikit-learn's get_params/set_params);
# numpydoc's own member tables would point at stub pages autosummary does not write.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    # scikit-learn's metadata routing: set_fit_request & co. (added to every estimator
    # with sample_weight) and get_metadata_routing; their docstrings link to
    # scikit-learn's own user guide and glossary, unknown here.
    if (name.startswith("set_") and name.endswith("_request")) or name == "get_metadata_routing":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)

# --- gallery ---
os.environ.setdefault("MPLBACKEND", "Agg")


sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    # a failing example fails the build, as a broken docstring does under -W
    "abort_on_example_error": True,
    # first ours (it skips figures pyplot manages), then sphinx-gallery's own; by
    # name, so that Sphinx can cache the configuration
    "image_scrapers": ("_gallery_scraper.returned_figures", "matplotlib"),
}


# --- command-line help, generated from the installed `fastsoftmax` command ---
def _write_cli_help():
    generated = DOCS / "_generated"
    generated.mkdir(exist_ok=True)
    for command in ([], ["train"], ["predict"], ["evaluate"]):
        result = subprocess.run(
            [sys.executable, "-m", "fastsoftmax", *command, "--help"],
            capture_output=True, text=True, check=True,
            env={**os.environ, "COLUMNS": "80"},
        )
        name = "_".join(["fastsoftmax", *command])
        (generated / f"{name}.txt").write_text(result.stdout, encoding="utf-8")


_write_cli_help()
