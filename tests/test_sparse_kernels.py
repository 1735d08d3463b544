"""The CSR data kernels of every backend against the naive oracle and the dense kernels.

The kernels are called directly with the three CSR arrays (see "Sparse (CSR)
data kernels" in :mod:`fastsoftmax._backends`) on small random matrices with
all the odd cases: unsorted indices, duplicate entries, explicit zeros, empty
rows, no rows, int32 and int64 indices, float32 and float64 data, sample
weights.  Each call checks that the inputs are untouched and every entry of
the outputs written; the sums must agree with the naive CSR kernel and with
the dense kernel of the same name on the dense copy.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastsoftmax._backends import get_module

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

RTOL = {np.dtype(np.float32): 3e-5, np.dtype(np.float64): 1e-10}
SENTINEL = 7777.0

# (n, d, C): no rows, one row, widths around the SIMD lanes, many classes
SHAPES = [(0, 5, 3), (1, 1, 2), (7, 13, 3), (40, 70, 10), (33, 9, 37), (300, 50, 5)]


@pytest.fixture
def mod(backend_name):
    return get_module(backend_name)


def odd_csr(rng, n, d, dtype, index_dtype, density=0.3):
    """Three CSR arrays with unsorted indices, duplicates, explicit zeros and empty rows."""
    data, indices, indptr = [], [], [0]
    for i in range(n):
        if i % 5 == 2:  # an empty row
            indptr.append(len(indices))
            continue
        cols = np.flatnonzero(rng.random(d) < density)
        if d and cols.size == 0:
            cols = rng.integers(0, d, size=1)
        cols = rng.permutation(cols)  # unsorted
        if cols.size and i % 3 == 0:
            cols = np.append(cols, cols[0])  # a duplicate entry, summed
        values = rng.standard_normal(cols.size)
        if values.size and i % 4 == 1:
            values[-1] = 0.0  # an explicit zero
        data.extend(values.tolist())
        indices.extend(cols.tolist())
        indptr.append(len(indices))
    return (
        np.asarray(data, dtype=dtype),
        np.asarray(indices, dtype=index_dtype),
        np.asarray(indptr, dtype=index_dtype),
    )


def dense(data, indices, indptr, d):
    # scipy sums duplicates when densifying, as the kernels must
    return sp.csr_matrix((data, indices, indptr), shape=(indptr.size - 1, d)).toarray()


def _problem(rng, n, d, C, dtype, index_dtype, weighted):
    csr = odd_csr(rng, n, d, dtype, index_dtype)
    coef = (rng.standard_normal((C, d)) / np.sqrt(max(d, 1))).astype(dtype)
    intercept = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, size=n).astype(np.intp)
    sample_weight = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    return csr, coef, intercept, y, sample_weight


def _call(kernel, inputs, outs):
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]
    result = kernel(*inputs, *outs)
    for arg, saved in zip(inputs, before):
        if isinstance(arg, np.ndarray):
            np.testing.assert_array_equal(arg, saved, err_msg="a kernel modified an input")
            assert arg.dtype == saved.dtype
    for out in outs:
        assert not np.any(out == SENTINEL), "a kernel left entries of its out buffer unwritten"
    return result


def _close(actual, expected, dtype, scale=1.0):
    rtol = RTOL[np.dtype(dtype)]
    if isinstance(actual, np.ndarray):
        assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _out(shape, dtype):
    return np.full(shape, SENTINEL, dtype)


@pytest.mark.parametrize("n,d,C", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_ce_sums_csr(mod, rng, n, d, C, dtype, index_dtype, weighted):
    csr, coef, intercept, y, sw = _problem(rng, n, d, C, dtype, index_dtype, weighted)
    naive = get_module("naive")
    for bias in (intercept, None):
        outs = (_out((C, d), dtype), _out(C, dtype))
        loss, total = _call(mod.softmax_ce_sums_csr, (*csr, coef, bias, y, sw), outs)
        ref = (np.empty((C, d)), np.empty(C))
        ref_loss, ref_total = naive.softmax_ce_sums_csr(*csr, coef, bias, y, sw, *ref)
        assert isinstance(loss, float) and isinstance(total, float)
        _close(loss, ref_loss, dtype, scale=max(1.0, abs(ref_loss)))
        assert total == pytest.approx(ref_total, rel=1e-12)
        _close(outs[0], ref[0], dtype, scale=max(1.0, n))
        _close(outs[1], ref[1], dtype, scale=max(1.0, n))
        # the same sums as the dense kernel on the dense copy (duplicates summed)
        X = np.ascontiguousarray(dense(*csr, d))
        dense_outs = (np.empty((C, d), dtype), np.empty(C, dtype))
        dense_loss, _ = mod.softmax_ce_sums(X, coef, bias, y, sw, *dense_outs)
        _close(loss, dense_loss, dtype, scale=max(1.0, abs(dense_loss)))
        _close(outs[0], dense_outs[0], dtype, scale=max(1.0, n))


@pytest.mark.parametrize("n,d,C", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_linear_csr(mod, rng, n, d, C, dtype, index_dtype):
    csr, coef, intercept, _, _ = _problem(rng, n, d, C, dtype, index_dtype, False)
    naive = get_module("naive")
    for bias in (intercept, None):
        out = _out((n, C), dtype)
        assert _call(mod.linear_csr, (*csr, coef, bias), (out,)) is out
        ref = naive.linear_csr(*csr, coef, bias, np.empty((n, C)))
        _close(out, ref, dtype, scale=3.0)
        expected = dense(*csr, d) @ coef.astype(np.float64).T + (0 if bias is None else bias)
        _close(out, expected, dtype, scale=3.0)


@pytest.mark.parametrize("n,d,C", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_sums_csr(mod, rng, n, d, C, dtype, index_dtype, weighted):
    csr, coef, _, _, sw = _problem(rng, n, d, 1, dtype, index_dtype, weighted)
    w = np.ascontiguousarray(coef[0])
    y = (rng.random(n) < 0.5).astype(dtype)
    naive = get_module("naive")
    out = _out(d, dtype)
    loss, db, total = _call(mod.logistic_sums_csr, (*csr, w, 0.3, y, sw), (out,))
    ref = np.empty(d)
    ref_loss, ref_db, ref_total = naive.logistic_sums_csr(*csr, w, 0.3, y, sw, ref)
    assert all(isinstance(v, float) for v in (loss, db, total))
    _close(loss, ref_loss, dtype, scale=max(1.0, abs(ref_loss)))
    _close(db, ref_db, dtype, scale=max(1.0, n))
    assert total == pytest.approx(ref_total, rel=1e-12)
    _close(out, ref, dtype, scale=max(1.0, n))
    X = np.ascontiguousarray(dense(*csr, d))
    dense_out = np.empty(d, dtype)
    dense_loss, dense_db, _ = mod.logistic_sums(X, w, 0.3, y, sw, dense_out)
    _close(loss, dense_loss, dtype, scale=max(1.0, abs(dense_loss)))
    _close(out, dense_out, dtype, scale=max(1.0, n))


def test_csr_kernels_threads_agree(mod, rng, restore_num_threads):
    # enough entries for every backend to split the rows over threads
    import fastsoftmax

    csr = odd_csr(rng, 3000, 400, np.float64, np.int32, density=0.1)
    C = 7
    coef = rng.standard_normal((C, 400)) / 20
    y = rng.integers(0, C, size=3000).astype(np.intp)
    results = []
    for threads in (1, 2):
        fastsoftmax.set_num_threads(threads)
        outs = (np.empty((C, 400)), np.empty(C))
        loss, _ = mod.softmax_ce_sums_csr(*csr, coef, None, y, None, *outs)
        results.append((loss, *outs))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_ce_sums_csr_minibatch(mod, rng, dtype, index_dtype, weighted):
    # fewer entries than features, as in a minibatch of a wide corpus (a path of its own)
    n, d, C = 20, 1000, 6
    csr = odd_csr(rng, n, d, dtype, index_dtype, density=0.005)
    assert csr[2][-1] < d
    coef = (rng.standard_normal((C, d)) / 5).astype(dtype)
    intercept = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, size=n).astype(np.intp)
    sw = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    outs = (_out((C, d), dtype), _out(C, dtype))
    loss, _ = _call(mod.softmax_ce_sums_csr, (*csr, coef, intercept, y, sw), outs)
    ref = (np.empty((C, d)), np.empty(C))
    ref_loss, _ = get_module("naive").softmax_ce_sums_csr(*csr, coef, intercept, y, sw, *ref)
    _close(loss, ref_loss, dtype, scale=max(1.0, abs(ref_loss)))
    _close(outs[0], ref[0], dtype, scale=n)
    _close(outs[1], ref[1], dtype, scale=n)


@pytest.mark.parametrize("n,d,C", [(7, 13, 3), (40, 70, 10), (300, 50, 5), (3000, 400, 7)])
@pytest.mark.parametrize("threads", [1, 2])
def test_softmax_ce_sums_csr_weights_layout(mod, rng, n, d, C, threads, restore_num_threads):
    # coef and coef_grad_out as transposed views of (d, C) arrays (the public functions' W and
    # dW): the same sums as in the (C, d) layout, the gradient written through the view
    import fastsoftmax

    fastsoftmax.set_num_threads(threads)
    csr, coef, intercept, y, sw = _problem(rng, n, d, C, np.float64, np.int32, True)
    W = np.ascontiguousarray(coef.T)
    dW = _out((d, C), np.float64)
    outs = (np.empty((C, d)), np.empty(C))
    ref_loss, _ = mod.softmax_ce_sums_csr(*csr, coef, intercept, y, sw, *outs)
    loss, _ = _call(mod.softmax_ce_sums_csr, (*csr, W.T, intercept, y, sw), (dW.T, np.empty(C)))
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dW, outs[0].T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_ce_sums_csr_threads_into_the_gradient_view(mod, rng, dtype, restore_num_threads):
    # two threads on the public functions' layout: the first thread adds into dW itself,
    # the second into its own accumulator, added into dW at the end (garbage in dW before)
    import fastsoftmax

    n, d, C = 4000, 500, 9
    csr = odd_csr(rng, n, d, dtype, np.int32, density=0.05)
    assert (csr[2][-1] * C) // (1 << 18) >= 2  # enough work for the cython backend's 2 threads
    coef = (rng.standard_normal((C, d)) / 5).astype(dtype)
    intercept = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, size=n).astype(np.intp)
    W = np.ascontiguousarray(coef.T)
    ref = (np.empty((C, d)), np.empty(C))
    ref_loss, _ = get_module("naive").softmax_ce_sums_csr(
        *(a.astype(np.float64) if a.dtype.kind == "f" else a for a in csr),
        coef.astype(np.float64), intercept.astype(np.float64), y, None, *ref)  # fmt: skip
    for threads in (1, 2):
        fastsoftmax.set_num_threads(threads)
        dW = _out((d, C), dtype)
        loss, _ = mod.softmax_ce_sums_csr(*csr, W.T, intercept, y, None, dW.T, np.empty(C, dtype))
        _close(loss, ref_loss, dtype, scale=max(1.0, abs(ref_loss)))
        _close(dW, ref[0].T, dtype, scale=n)


def test_public_sparse_grad_no_weight_transposes(rng):
    # through the public function on CSR, W reaches the kernel untransposed (its data, not a copy)
    # and dW is the buffer the kernel wrote
    from unittest import mock

    import fastsoftmax
    from fastsoftmax._backends import cython as cython_backend

    pytest.importorskip("fastsoftmax._sparse_kernels")
    X = sp.random(200, 300, density=0.05, format="csr", random_state=0, dtype=np.float32)
    W = rng.standard_normal((300, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=200)
    seen = {}
    kernel = cython_backend._sk.softmax_ce_sums_csr

    def spy(data, indices, indptr, W_kernel, *args):
        seen["W"], seen["G"] = np.asarray(W_kernel), np.asarray(args[3])  # G_acc
        return kernel(data, indices, indptr, W_kernel, *args)

    with mock.patch.object(cython_backend._sk, "softmax_ce_sums_csr", spy):
        loss, dW, db = fastsoftmax.softmax_cross_entropy_grad(X, W, None, y, backend="cython")
    assert np.shares_memory(seen["W"], W)
    assert np.shares_memory(seen["G"], dW)
    ref = fastsoftmax.softmax_cross_entropy_grad(X.toarray(), W, None, y, backend="naive")
    np.testing.assert_allclose(dW, ref[1], rtol=1e-4, atol=1e-6)
    assert loss == pytest.approx(ref[0], rel=1e-5)
