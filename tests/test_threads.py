"""The kernels' default thread count follows the OpenMP limits (issue 11)."""

import os
import subprocess
import sys

import pytest

import fastsoftmax

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def default_threads():
    before = fastsoftmax._threads._num_threads
    fastsoftmax.set_num_threads(None)
    yield
    fastsoftmax._threads._num_threads = before


def test_threadpool_limits_makes_the_kernels_single_threaded(default_threads):
    pytest.importorskip("fastsoftmax._cython_kernels")
    if os.cpu_count() < 2:
        pytest.skip("one core: nothing to limit")
    assert fastsoftmax.get_num_threads() >= 2
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastsoftmax.get_num_threads() == 1
    assert fastsoftmax.get_num_threads() >= 2


def test_set_num_threads_overrides_the_openmp_limit(default_threads):
    pytest.importorskip("fastsoftmax._cython_kernels")
    fastsoftmax.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastsoftmax.get_num_threads() == 2
    fastsoftmax.set_num_threads(None)  # back to following the limit
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert fastsoftmax.get_num_threads() == 1


@pytest.mark.parametrize("backend", ["cython", "numba"])
def test_omp_num_threads_limits_the_default(backend):
    code = (
        "import fastsoftmax as fs, numpy as np\n"
        f"fs.set_backend({backend!r})\n"
        "fs.softmax(np.ones((4, 4)), axis=1)\n"
        "print(fs.get_num_threads())\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("FASTSOFTMAX_NUM_THREADS", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    if "is not available" in result.stderr:
        pytest.skip(f"backend {backend} is not available")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1"
