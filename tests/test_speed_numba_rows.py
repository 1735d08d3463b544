"""The numba row kernels and linear split over Python threads (issue 13: the cold compile).

The row kernels are serial loops over a range of rows (no parallel kernel to
compile); ``_split_rows`` runs them in parts on several threads.  The
results must not depend on the split: bit for bit equal to the one-thread
result, whatever the number of rows against the number of parts, and equal
to the NumPy backend's within rounding.
"""

import os

import numpy as np
import pytest

import fastsoftmax

numba_backend = pytest.importorskip("fastsoftmax._backends.numba")
from fastsoftmax._backends import get_module  # noqa: E402

reference = get_module("numpy")


@pytest.fixture
def split_everything(monkeypatch):
    """Split every call over up to 4 parts, however small (then 1 thread for the reference)."""
    before = fastsoftmax.get_num_threads()

    def with_parts(parts):
        fastsoftmax.set_num_threads(parts)
        monkeypatch.setattr(numba_backend, "_SPLIT_MIN_WORK", 1)
        monkeypatch.setattr(numba_backend, "_LINEAR_MIN_WORK", 1)

    yield with_parts
    fastsoftmax.set_num_threads(before)


def _rows_calls(x, y, X, coef, b):
    out = np.empty_like(x)
    vec = np.empty(x.shape[0], x.dtype)
    lin = np.empty((X.shape[0], coef.shape[0]), X.dtype)
    return {
        "softmax": lambda m: m.softmax(x, out).copy(),
        "log_softmax": lambda m: m.log_softmax(x, out).copy(),
        "logsumexp": lambda m: m.logsumexp(x, vec).copy(),
        "cross_entropy": lambda m: m.cross_entropy(x, y, vec).copy(),
        "linear": lambda m: m.linear(X, coef, b, lin).copy(),
        "linear_no_bias": lambda m: m.linear(X, coef, None, lin).copy(),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 17, 64])
@pytest.mark.parametrize("k", [1, 10, 40])
def test_split_over_parts_is_bit_for_bit(split_everything, dtype, n, k):
    rng = np.random.default_rng(n * 100 + k)
    x = (rng.standard_normal((n, k)) * 5).astype(dtype)
    x[0, 0] = np.nan if n > 2 else x[0, 0]  # a NaN row stays NaN, the others untouched
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, 13)).astype(dtype)
    coef = rng.standard_normal((k, 13)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    calls = _rows_calls(x, y, X, coef, b)
    split_everything(1)
    one = {name: call(numba_backend) for name, call in calls.items()}
    for parts in (2, 3, 4):
        split_everything(parts)
        for name, call in calls.items():
            np.testing.assert_array_equal(call(numba_backend), one[name], err_msg=name)
    tol = dict(rtol=2e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32
               else 1e-12)  # fmt: skip
    for name, call in calls.items():
        np.testing.assert_allclose(one[name], call(reference), err_msg=name, **tol)


def test_wide_linear_and_long_rows_split(split_everything):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((11, 7)).astype(np.float32)
    coef = rng.standard_normal((40, 7)).astype(np.float32)  # > 32 classes: the wide kernel
    x = rng.standard_normal((5, 5000)).astype(np.float32)  # > 4096 entries: the long-row kernels
    calls = _rows_calls(x, rng.integers(0, 5000, 5), X, coef, np.zeros(40, np.float32))
    split_everything(1)
    one = {name: call(numba_backend) for name, call in calls.items()}
    split_everything(3)
    for name, call in calls.items():
        np.testing.assert_array_equal(call(numba_backend), one[name], err_msg=name)


def test_small_inputs_stay_on_the_calling_thread(monkeypatch):
    def no_pool():
        raise AssertionError("a small input went to the thread pool")

    monkeypatch.setattr(numba_backend, "_thread_pool", no_pool)
    x = np.ones((100, 10), np.float32)
    np.testing.assert_allclose(numba_backend.softmax(x, np.empty_like(x)), 0.1, rtol=1e-6)


def test_thread_pool_is_renewed_in_a_forked_child(monkeypatch):
    pool = numba_backend._thread_pool()
    assert numba_backend._thread_pool() is pool
    monkeypatch.setattr(os, "getpid", lambda: -12345)  # as in a child after fork
    assert numba_backend._thread_pool() is not pool


def test_row_kernels_have_no_parallel_kernel():
    # what a cold start compiles for them: serial loops only
    for name in ("softmax", "log_softmax", "logsumexp", "cross_entropy", "linear"):
        assert not hasattr(numba_backend, f"_{name}_kernel")
    for rows in (numba_backend._softmax_rows, numba_backend._linear_narrow_rows):
        assert not rows.targetoptions.get("parallel")
