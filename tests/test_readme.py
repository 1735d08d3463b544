"""Every ```python block of README.md runs, in order, in one shared namespace.

Blocks run like notebook cells: names defined by one block are seen by the
next.  Blocks that use MNIST are marked ``mnist`` and skipped when the files are
absent; a block that then fails only because an earlier block was skipped is
skipped too.  Blocks written with ``>>>`` prompts are checked as doctests.
"""

import doctest
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _blocks():
    if not README.is_file():
        return []
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))  # line of the block's first code line
        for m in FENCE.finditer(text)
    ]


BLOCKS = _blocks()


def _needs_mnist(code):
    return "mnist" in code.lower()


def _mnist_available():
    from fastsoftmax.datasets import DataNotFoundError, load_mnist

    try:
        load_mnist(download=False)
    except (DataNotFoundError, ValueError):
        return False
    return True


@pytest.fixture(scope="module")
def session():
    """The namespace shared by the blocks, and the blocks that were skipped."""
    return {"globals": {"__name__": "__readme__"}, "skipped": []}


@pytest.fixture
def readme_env(session, tmp_path_factory, monkeypatch):
    # one working folder for all blocks: a file written by one block is read by the next
    workdir = session.setdefault("workdir", tmp_path_factory.mktemp("readme"))
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return session


def test_readme_has_python_examples():
    if not README.is_file():
        pytest.skip("no README.md next to the tests (installed without sources)")
    assert BLOCKS, "README.md has no ```python blocks"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        pytest.param(line, code, id=f"line{line}", marks=[pytest.mark.mnist] if _needs_mnist(code) else [])
        for line, code in BLOCKS
    ],
)
def test_readme_block(line, code, readme_env):
    session = readme_env
    if _needs_mnist(code) and not _mnist_available():
        session["skipped"].append(line)
        pytest.skip("needs the MNIST files (set FASTSOFTMAX_DATA)")
    namespace = session["globals"]
    try:
        if re.search(r"^\s*>>> ", code, re.MULTILINE):
            test = doctest.DocTestParser().get_doctest(code, namespace, f"README.md:{line}",
                                                      str(README), line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            report = []
            runner.run(test, out=report.append, clear_globs=False)
            namespace.update(test.globs)  # DocTest ran on a copy: share what it defined
            assert runner.failures == 0, "".join(report)
        else:
            # padding with newlines makes tracebacks point at README.md's own line numbers
            exec(compile("\n" * (line - 1) + code, str(README), "exec"), namespace)
    except NameError as exc:
        if session["skipped"]:
            pytest.skip(f"depends on a skipped block (line {session['skipped']}): {exc}")
        raise


# The command-line examples: every line of a ```bash block that calls the installed
# `fastsoftmax` command (the pip lines are what CI itself runs).
BASH_FENCE = re.compile(r"^```bash[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def _cli_lines():
    if not README.is_file():
        return []
    text = README.read_text(encoding="utf-8")
    return [
        line.strip()
        for block in BASH_FENCE.finditer(text)
        for line in block.group(1).splitlines()
        if line.strip().startswith("fastsoftmax ")
    ]


CLI_LINES = _cli_lines()


def test_readme_has_cli_examples():
    if not README.is_file():
        pytest.skip("no README.md next to the tests (installed without sources)")
    assert any(line.startswith("fastsoftmax train") for line in CLI_LINES)


@pytest.mark.mnist
def test_readme_cli_examples_run_in_order(tmp_path):
    import shutil
    import subprocess

    if shutil.which("fastsoftmax") is None:
        pytest.skip("the fastsoftmax command is not installed")
    if not _mnist_available():
        pytest.skip("needs the MNIST files (set FASTSOFTMAX_DATA)")
    env = dict(os.environ, MPLBACKEND="Agg")
    data_dir = os.environ.get("FASTSOFTMAX_DATA")
    if data_dir:  # relative paths in the README's lines are taken from the working folder
        env["FASTSOFTMAX_DATA"] = os.path.abspath(data_dir)
    for command in CLI_LINES:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        assert done.stdout.strip(), f"{command!r} printed nothing"
