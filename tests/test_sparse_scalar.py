"""The dense and sparse logistic paths of the cython backend share one scalar sigmoid and
binary cross-entropy (src_cython/fs_scalar.pxd): the same bits, not 1 ulp apart."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fastsoftmax
from fastsoftmax._backends import get_module

pytestmark = pytest.mark.skipif("cython" not in fastsoftmax.backends(), reason="no cython")


def _margins(dtype):
    # log 3 (sigmoid 0.75, where the two copies differed), tiny, huge, both signs
    rng = np.random.default_rng(0)
    special = np.log(np.array([3.0, 1 / 3, 1.0, 7.0, 1e-30, 1e-3, 20.0, 90.0, 700.0]))
    values = np.concatenate([special, -special, [0.0, 1e-8, -1e-8, 88.7, -88.7, 103.0, -104.0],
                             rng.normal(scale=6.0, size=2000)])  # fmt: skip
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_residual_bits_equal_dense_sigmoid(dtype):
    # one entry of value 1 per row, each in its own column: the sparse pass's gradient
    # row j is exactly sigmoid(m_j) - y_j, its loss the sum of the dense per-row losses
    kernels = get_module("cython")
    m = _margins(dtype)
    n = m.shape[0]
    for y in (np.zeros(n, dtype), np.ones(n, dtype)):
        X = sp.csr_matrix((np.ones(n, dtype), np.arange(n, dtype=np.int32),
                           np.arange(n + 1, dtype=np.int32)), shape=(n, n))  # fmt: skip
        grad = np.empty(n, dtype)
        loss, _, _ = kernels.logistic_sums_csr(X.data, X.indices, X.indptr, m, 0.0, y, None, grad)
        expected = fastsoftmax.sigmoid(m, backend="cython") - y
        np.testing.assert_array_equal(grad, expected)
        losses = kernels.binary_cross_entropy(m, y, np.empty(n, dtype))
        assert loss == pytest.approx(float(np.sum(losses, dtype=np.float64)), rel=1e-12)


def test_sigmoid_of_log3_is_three_quarters():
    # the doctest value, dense and sparse
    x = np.log(np.array([3.0], dtype=np.float32))
    assert fastsoftmax.sigmoid(x, backend="cython")[0] == np.float32(0.75)
    X = sp.csr_matrix(np.ones((1, 1), np.float32))
    X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    grad = np.empty(1, np.float32)
    get_module("cython").logistic_sums_csr(X.data, X.indices, X.indptr, x, 0.0,
                                           np.zeros(1, np.float32), None, grad)  # fmt: skip
    assert grad[0] == np.float32(0.75)
