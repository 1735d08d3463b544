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


def _blas_threads():
    """{library file name: threads} of the loaded BLAS libraries."""
    return {os.path.basename(info["filepath"]): info["num_threads"]
            for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"}  # fmt: skip


@pytest.fixture
def scipy_blas_on_two_threads():
    """scipy's own BLAS (a wheel's scipy.libs) on 2 threads for the test, restored after."""
    import numpy as np
    import scipy.linalg

    from fastsoftmax._threads import _scipy_own_blas

    scipy.linalg.blas.ddot(np.ones(2), np.ones(2))
    controllers = _scipy_own_blas()
    if not controllers:
        pytest.skip("scipy shares its BLAS with NumPy here (or it is not threadpoolctl's)")
    saved = [c.get_num_threads() for c in controllers]
    for c in controllers:
        c.set_num_threads(2)
    yield {os.path.basename(c.filepath) for c in controllers}
    for c, n in zip(controllers, saved):
        c.set_num_threads(n)


def test_scipy_lbfgs_runs_with_scipy_blas_on_one_thread(scipy_blas_on_two_threads, monkeypatch):
    """scipy's L-BFGS-B driver runs with scipy's own BLAS on one thread (its idle threads spin
    on the kernels' cores); NumPy's BLAS and the count after the fit are unchanged."""
    import numpy as np
    import scipy.optimize

    scipy_libs = scipy_blas_on_two_threads
    before = _blas_threads()
    seen = []
    minimize = scipy.optimize.minimize

    def recording_minimize(*args, **kwargs):
        seen.append(_blas_threads())
        return minimize(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", recording_minimize)
    X = np.random.default_rng(0).standard_normal((60, 3))
    y = np.arange(60) % 3
    fastsoftmax.LogisticRegression(max_iter=5).fit(X, y)
    assert seen, "the fit did not run scipy's L-BFGS-B"
    for name, n in seen[0].items():
        assert n == (1 if name in scipy_libs else before[name]), name
    assert _blas_threads() == before


def test_scipy_blas_limit_is_restored_by_the_last_to_leave(scipy_blas_on_two_threads):
    """LogisticRegressionCV's folds enter the limit from several threads and leave in any
    order: the limit holds until the last one leaves, which restores the count."""
    from fastsoftmax._threads import scipy_blas_single_thread

    before = _blas_threads()
    first, second = scipy_blas_single_thread(), scipy_blas_single_thread()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first fold ends while the second still runs
    assert all(_blas_threads()[name] == 1 for name in scipy_blas_on_two_threads)
    second.__exit__(None, None, None)
    assert _blas_threads() == before
