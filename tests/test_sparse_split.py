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


def _pass(monkeypatch, threads, csr, W, b, y, sw, direct=True, ring_bytes=None):
    # the cython backend's CSR pass on `threads` threads (whatever the amount of work)
    monkeypatch.setattr(cython_backend, "_csr_threads", lambda indptr, C: threads)
    if ring_bytes is not None:  # 1: a ring of one slot
        monkeypatch.setattr(cython_backend, "_CSR_SPLIT_RING_BYTES", ring_bytes)
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
    for threads, ring_bytes, direct in [(2, None, True), (3, 1, True), (2, 5000, False)]:
        # ring_bytes 1: one slot, each block waits for every thread's scatter of the last
        loss, total, grad, db = _pass(monkeypatch, threads, csr, W, b, y, sw, direct, ring_bytes)
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
    loss2, _, grad2, db2 = _pass(monkeypatch, 2, csr, W, b, y, sw, ring_bytes=1)
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
                entry_offsets=np.empty((1, 2 * nnz), np.int32),
                entry_rows=np.empty((1, 2 * nnz), np.uint8))  # fmt: skip
    sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G, *args.values(), 64, 2)
    for name, bad in [("R_buf", np.empty((65, 3))), ("entry_offsets", np.empty((2, 2 * nnz), np.int32)),
                      ("entry_rows", np.empty((1, 2 * nnz + 1), np.uint8)), ("db_acc", np.zeros((1, 3)))]:  # fmt: skip
        with pytest.raises(ValueError, match="scratch of another shape"):
            sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G,
                                         *{**args, name: bad}.values(), 64, 2)  # fmt: skip
    with pytest.raises(ValueError, match="scratch of another shape"):  # blocks of at most 256 rows
        sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G,
                                     *{**args, "R_buf": np.empty((257, 3))}.values(), 257, 2)  # fmt: skip
    # room for each thread's list: threads x the most entries of a block
    short = {**args, "entry_offsets": np.empty((1, 2 * nnz - 1), np.int32),
             "entry_rows": np.empty((1, 2 * nnz - 1), np.uint8)}  # fmt: skip
    with pytest.raises(ValueError, match="entry lists of"):
        sk.softmax_ce_sums_csr_split(*csr, W, b, y, np.empty(0), G, *short.values(), 64, 2)


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


def _features_in(csr, lo, hi, rng):
    # the same rows, every entry moved into the features lo:hi (duplicates stay duplicates)
    data, indices, indptr = csr
    return data, (lo + indices % (hi - lo)).astype(indices.dtype), indptr


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("features", [(0, 64), (64, 128), (150, 170)])
def test_split_pass_entries_in_one_feature_block(monkeypatch, rng, threads, features):
    # every entry in one block of 64 features: one thread scatters all of them, the others
    # none (they still zero the gradient rows they own); with a ring of one slot too
    n, d, C = 300, 200, 9
    csr, W, b, y, sw = _problem(rng, n, d, C, np.float32, np.int64, weighted=True)
    csr = _features_in(csr, *features, rng)
    loss1, _, grad1, db1 = _pass(monkeypatch, 1, csr, W, b, y, sw)
    outside = np.ones(d, bool)
    outside[features[0] : features[1]] = False
    assert not np.any(grad1[:, outside])
    for ring_bytes in (None, 1):
        loss, _, grad, db = _pass(monkeypatch, threads, csr, W, b, y, sw, ring_bytes=ring_bytes)
        np.testing.assert_array_equal(grad, grad1)
        np.testing.assert_allclose(db, db1, rtol=3e-5, atol=3e-5 * n)
        assert loss == pytest.approx(loss1, rel=3e-5)


@pytest.mark.parametrize("ring_bytes", [1, 20_000, 60_000])
@pytest.mark.parametrize("threads", [2, 3])
def test_split_pass_ring_wraps(monkeypatch, rng, ring_bytes, threads):
    # a ring of 1, 2 or several slots for 16 blocks of rows: each slot is reused, its
    # residual and entry lists overwritten only once every thread has scattered them; rows
    # of very different lengths (the lists sized by the fullest block)
    n, d, C = 1000, 700, 17
    csr, W, b, y, sw = _problem(rng, n, d, C, np.float64, np.int32, weighted=False)
    data, indices, indptr = csr
    long_rows = sp_rows(rng, 3, d)  # three rows holding every feature, in one block
    data = np.concatenate([data, long_rows[0]])
    indices = np.concatenate([indices, long_rows[1].astype(np.int32)])
    indptr = np.concatenate([indptr, indptr[-1] + long_rows[2][1:]]).astype(np.int32)
    csr = (data, indices, indptr)
    y = np.append(y, [0, 1, 2]).astype(np.intp)
    W = W.astype(np.float64)
    loss1, _, grad1, db1 = _pass(monkeypatch, 1, csr, W, b, y, sw)
    loss, _, grad, db = _pass(monkeypatch, threads, csr, W, b, y, sw, ring_bytes=ring_bytes)
    np.testing.assert_array_equal(grad, grad1)
    np.testing.assert_allclose(db, db1, rtol=1e-12, atol=1e-12 * n)
    assert loss == pytest.approx(loss1, rel=1e-12)


def sp_rows(rng, m, d):
    # m rows of all d features, in random order: (data, indices, indptr)
    indices = np.concatenate([rng.permutation(d) for _ in range(m)])
    return rng.standard_normal(m * d), indices, np.arange(0, m * d + 1, d)


def test_split_pass_smaller_team(tmp_path):
    # OpenMP may give fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC): the
    # features are then dealt out to the threads that run, none is left out
    import subprocess
    import sys

    script = tmp_path / "team.py"
    script.write_text(
        "import numpy as np\n"
        "from fastsoftmax import _sparse_kernels as sk\n"
        "rng = np.random.default_rng(0)\n"
        "n, d, C = 200, 300, 5\n"
        "X = (rng.random((n, d)) < 0.05) * rng.standard_normal((n, d))\n"
        "import scipy.sparse as sp\n"
        "X = sp.csr_matrix(X)\n"
        "W, b = rng.standard_normal((d, C)), np.zeros(C)\n"
        "y = rng.integers(0, C, n).astype(np.intp)\n"
        "most = int(np.max(np.diff(X.indptr[::64].tolist() + [X.indptr[-1]])))\n"
        "def run(threads):\n"
        "    G = np.full((d, C), 7.0)\n"
        "    sk.softmax_ce_sums_csr_split(X.data, X.indices, X.indptr, W, b, y, np.empty(0), G,\n"
        "        np.zeros((threads, C)), np.empty((threads, 64 * C)), np.empty((256, C)),\n"
        "        np.empty((4, threads * most), np.int32), np.empty((4, threads * most), np.uint8),\n"
        "        64, threads)\n"
        "    return G\n"
        "G1 = np.zeros((d, C))\n"
        "sk.softmax_ce_sums_csr(X.data, X.indices, X.indptr, W, b, y, np.empty(0), G1,\n"
        "    np.zeros(C), np.empty(65 * C), 64, False)\n"
        "assert np.array_equal(run(3), G1) and np.array_equal(run(2), G1)\n"
        "print('ok')\n"
    )
    env = {**__import__("os").environ, "OMP_THREAD_LIMIT": "1"}
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
