"""Shared fixtures: a seeded random generator and backend selection with skipping.

Kept deliberately small: each test file defines the fixtures only it needs.
"""

import os

import numpy as np
import pytest

import fastsoftmax

# Tests that probe crashes run `python -c` in a subprocess, which puts the working
# directory first on sys.path: from a clone's root that is the source tree, without the
# compiled extension.  PYTHONSAFEPATH (Python >= 3.11) makes the subprocesses import the
# installed package, as the tests themselves do.
os.environ["PYTHONSAFEPATH"] = "1"
from fastsoftmax._backends import BACKEND_NAMES, get_module


def require_backend(name):
    """Return the kernel module of backend ``name``; skip the test if it is not available."""
    try:
        return get_module(name)
    except ImportError as exc:  # e.g. the Cython extension is not built here
        pytest.skip(str(exc))


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_blas():
    """Tests use small problems: BLAS threads would only contend for the cores."""
    try:
        import threadpoolctl
    except ImportError:  # installed with scikit-learn; without it BLAS keeps its threads
        yield
        return
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture
def rng():
    """A NumPy generator with a fixed seed, fresh for every test."""
    return np.random.default_rng(20240229)


@pytest.fixture(params=BACKEND_NAMES)
def backend_name(request):
    """Every backend name in turn; tests of an unavailable backend are skipped."""
    require_backend(request.param)
    return request.param


@pytest.fixture
def restore_num_threads():
    """Let a test call ``fastsoftmax.set_num_threads`` and restore the setting afterwards."""
    before = fastsoftmax.get_num_threads()
    yield
    fastsoftmax.set_num_threads(before)
