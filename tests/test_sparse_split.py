"""The cython CSR pass on several threads (split by features) and its register-held rows.

``softmax_ce_sums_csr`` on two threads or more shares out the rows for the
logits and the residual, and blocks of 64 features for the gradient
(``_sparse_kernels.softmax_ce_sums_csr_split``): each gradient row is summed
by one thread over the rows in their order, so the gradient must equal the
one-thread pass bit for bit, whatever the number of threads and the chunk of
rows.  The AVX-512 loops over a row's entries keep the row in registers for
C <= 64 (float32) / 32 (float64): the same FMAs in the same order as the
AVX2 loops, so those agree bit for bit too.  Odd cases: class counts around
the register blocks, feature counts around the 64-feature blocks, unsorted
indices, duplicates, explicit zeros, empty rows, no rows, int32/int64 indices,
float32/float64, sample weights, both gradient layouts.
"""

import numpy as np
import pytest
from test_sparse_kernels import RTOL, SENTINEL, odd_csr

from fastsoftmax._backends import get_module

sk = pytest.importorskip("fastsoftmax._sparse_kernels")
cython_backend = get_module("cython")

# around 1, 2, 3 and 4 vectors of 16 float32 / 8 float64 lanes, and past the register rows
CLASSES = [1, 7, 8, 9, 16, 17, 33, 49, 64, 65]


def _problem(rng, n, d, C, dtype, index_dtype, weighted):
    csr = odd_csr(rng, n, d, dtype, index_dtype, density=0.08)
    W = (rng.standard_normal((d, C)) / 3).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, size=n).astype(np.intp)
    sw = rng.uniform(0.1, 2.0, size=n).astype(dtype) if weighted else None
    return csr, W, b, y, sw


def _pass(monkeypatch, threads, csr, W, b, y, sw, direct=True, chunk_bytes=None):
    # the cython backend's CSR pass on `threads` threads (whatever the amount of work)
    monkeypatch.setattr(cython_backend, "_csr_threads", lambda indptr, C: threads)
    if chunk_bytes is not None:
        monkeypatch.setattr(cython_backend, "_CSR_SPLIT_CHUNK_BYTES", chunk_bytes)
    d, C = W.shape
    if direct:  # the public functions' layout: dW (d, C) written through its transposed view
        dW = np.full((d, C), SENTINEL, W.dtype)
        grad_out = dW.T
    else:
        grad_out = np.full((C, d), SENTINEL, W.dtype)
    db = np.full(C, SENTINEL, W.dtype)
    before = [a.copy() for a in (*csr, W, b, y)]
    loss, total = cython_backend.softmax_ce_sums_csr(*csr, W.T, b, y, sw, grad_out, db)
    for arg, saved in zip((*csr, W, b, y), before):
        np.testing.assert_array_equal(arg, saved)
    assert not np.any(grad_out == SENTINEL) and not np.any(db == SENTINEL)
    assert grad_out.dtype == W.dtype and db.dtype == W.dtype
    return loss, total, np.array(grad_out), db


@pytest.mark.parametrize("C", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_split_pass_is_the_one_thread_pass(monkeypatch, rng, C, dtype, index_dtype):
    n, d = 200, 130  # three blocks of 64 features, the last one short
    csr, W, b, y, sw = _problem(rng, n, d, C, dtype, index_dtype, weighted=C % 2 == 1)
    loss1, total1, grad1, db1 = _pass(monkeypatch, 1, csr, W, b, y, sw)
    naive_grad, naive_db = np.empty((C, d)), np.empty(C)
    naive_loss, _ = get_module("naive").softmax_ce_sums_csr(*csr, W.T, b, y, sw, naive_grad,
                                                             naive_db)  # fmt: skip
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(grad1, naive_grad, rtol=rtol, atol=rtol * n)
    for threads, chunk_bytes, direct in [(2, None, True), (3, 1, True), (2, 5000, False)]:
        # chunk_bytes 1: one block of 64 rows a chunk, so several chunks
        loss, total, grad, db = _pass(monkeypatch, threads, csr, W, b, y, sw, direct, chunk_bytes)
        np.testing.assert_array_equal(grad, grad1)  # bit for bit
        assert total == total1
        np.testing.assert_allclose(loss, loss1, rtol=rtol)
        np.testing.assert_allclose(db, db1, rtol=rtol, atol=rtol * n)
        np.testing.assert_allclose(loss, naive_loss, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("n,d", [(0, 5), (1, 1), (3, 64), (65, 65), (130, 200)])
def test_split_pass_odd_sizes(monkeypatch, rng, n, d):
    C = 5
    csr, W, b, y, sw = _problem(rng, n, d, C, np.float32, np.int32, weighted=True)
    loss1, _, grad1, db1 = _pass(monkeypatch, 1, csr, W, b, y, sw)
    loss2, _, grad2, db2 = _pass(monkeypatch, 2, csr, W, b, y, sw, chunk_bytes=1)
    np.testing.assert_array_equal(grad2, grad1)
    np.testing.assert_allclose(db2, db1, rtol=3e-5, atol=1e-5 * max(n, 1))
    assert loss2 == pytest.approx(loss1, rel=3e-5, abs=1e-6)
    if n == 0:
        assert loss2 == 0.0 and not np.any(grad2) and not np.any(db2)


def test_split_kernel_rejects_bad_scratch(rng):
    csr, W, b, y, _ = _problem(rng, 10, 20, 3, np.float64, np.int32, weighted=False)
    G = np.empty((20, 3))
    nnz = int(csr[2][-1])
    args = dict(db_acc=np.zeros((2, 3)), Z_buf=np.empty((2, 64 * 3)), R_buf=np.empty((64, 3)),
                list_j=np.empty((2, nnz), np.intp), list_i=np.empty((2, nnz), np.intp),
                list_x=np.empty((2, nnz)))  # fmt: skip
    sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G, *args.values(), 64, 2)
    for name, bad in [("R_buf", np.empty((65, 3))), ("list_j", np.empty((1, nnz), np.intp)),
                      ("db_acc", np.zeros((1, 3)))]:  # fmt: skip
        with pytest.raises(ValueError, match="scratch of another shape"):
            sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G,
                                         *{**args, name: bad}.values(), 64, 2)  # fmt: skip
    with pytest.raises(ValueError, match="entry lists shorter"):
        sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G,
                                     *{**args, "list_x": np.empty((2, nnz - 1))}.values(), 64, 2)  # fmt: skip


@pytest.mark.parametrize("C", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_rows_are_the_avx2_loops(monkeypatch, rng, C, dtype):
    # the AVX-512 register-held gather and scatter against the AVX2 loops, bit for bit
    if sk._set_simd_level(-1) < 2:
        pytest.skip("no AVX-512 on this CPU")
    csr, W, b, y, sw = _problem(rng, 150, 70, C, dtype, np.int64, weighted=True)
    results = []
    default = sk._set_register_rows(7)
    try:
        for level in (2, 1):
            assert sk._set_simd_level(level) == level
            logits = np.empty((150, C), dtype)
            sk.linear_csr(*csr, W, b, logits, 1)
            results.append((logits, *_pass(monkeypatch, 1, csr, W, b, y, sw)))
    finally:
        sk._set_simd_level(-1)
        sk._set_register_rows(default)
    (logits2, loss2, _, grad2, db2), (logits1, loss1, _, grad1, db1) = results
    np.testing.assert_array_equal(logits2, logits1)
    np.testing.assert_array_equal(grad2, grad1)
    # the residual kernel's column sums of db add 16 or 8 lanes at a time: not bit for bit
    rtol = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(db2, db1, rtol=rtol, atol=rtol * 150)
    assert loss2 == pytest.approx(loss1, rel=rtol)


@pytest.mark.parametrize("C", [3, 17, 50, 64])
@pytest.mark.parametrize("threads", [1, 2])
def test_register_rows_are_the_plain_avx512_loops(monkeypatch, rng, C, threads):
    # the register-held gather, scatter and list scatter against the plain loops of the same
    # level, bit for bit (the timing switch _set_register_rows changes no result)
    csr, W, b, y, sw = _problem(rng, 150, 130, C, np.float32, np.int32, weighted=True)
    results = []
    default = sk._set_register_rows(7)
    try:
        for which in (7, 0):
            sk._set_register_rows(which)
            results.append(_pass(monkeypatch, threads, csr, W, b, y, sw))
    finally:
        sk._set_register_rows(default)
    (loss7, _, grad7, db7), (loss0, _, grad0, db0) = results
    np.testing.assert_array_equal(grad7, grad0)
    if threads == 1:
        np.testing.assert_array_equal(db7, db0)
        assert loss7 == loss0
    else:  # the threads' shares of the loss and of db depend on the dynamic schedule
        np.testing.assert_allclose(db7, db0, rtol=3e-5, atol=3e-5 * 150)
        assert loss7 == pytest.approx(loss0, rel=1e-12)
