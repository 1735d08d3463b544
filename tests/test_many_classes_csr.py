"""The many-class (tiled) regime of ``softmax_ce_sums_csr`` (issue 14 on CSR input).

Every backend is checked against the naive oracle in both regimes
(``_tiling.forced``), with tails of row blocks and class tiles, empty rows,
duplicate and unsorted column indices, int32 and int64 indices; the skipping
bound on tiles built just below the threshold; the regime choice; and that
extra memory does not grow with the number of rows (no n x C logits).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastsoftmax._backends import _tiling, get_module
from conftest import require_backend
from test_many_classes import BACKENDS, _assert_close, _peak_traced_bytes


def _csr_problem(rng, n, d, C, dtype, index_dtype, weighted):
    X = sp.random(n, d, density=0.3, format="csr", random_state=rng, dtype=np.float64)
    X = sp.csr_matrix((rng.normal(size=X.nnz), X.indices, X.indptr), shape=(n, d))
    data, indices, indptr = X.data.astype(dtype), X.indices.copy(), X.indptr.copy()
    if n > 2:  # a duplicate column in row 1 (the entries add up), and row 2 reversed
        lo, hi = indptr[1], indptr[2]
        if hi > lo:
            data = np.insert(data, hi, dtype(0.5))
            indices = np.insert(indices, hi, indices[lo])
            indptr[2:] += 1
        lo, hi = indptr[2], indptr[3]
        data[lo:hi], indices[lo:hi] = data[lo:hi][::-1].copy(), indices[lo:hi][::-1].copy()
    coef = (2 * rng.normal(size=(C, d)) / np.sqrt(d)).astype(dtype)
    intercept = (3 * rng.normal(size=C)).astype(dtype)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = (rng.random(n) + 0.1).astype(dtype) if weighted else None
    return (data, indices.astype(index_dtype), indptr.astype(index_dtype), coef, intercept, y, sw)


def _csr_sums(name, data, indices, indptr, coef, intercept, y, sw, **options):
    G = np.full(coef.shape, np.nan, coef.dtype)  # every entry must be written
    g = np.full(coef.shape[0], np.nan, coef.dtype)
    loss, total = get_module(name).softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y,
                                                       sw, G, g, **options)  # fmt: skip
    return loss, total, G, g


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype, index_dtype", [(np.float32, np.int32), (np.float64, np.int64),
                                                (np.float32, np.int64)])
@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("n, d, C, class_tile, row_block", [(0, 3, 7, 3, 4), (1, 5, 9, 4, 4),
                                                            (29, 11, 23, 5, 8), (40, 7, 33, 16, 17)])
def test_every_backend_matches_naive_on_csr_in_both_regimes(
    name, dtype, index_dtype, tiled, n, d, C, class_tile, row_block, rng
):
    require_backend(name)
    problem = _csr_problem(rng, n, d, C, dtype, index_dtype, weighted=n % 2 == 1)
    for skip in (True, False):
        with _tiling.forced(tiled, class_tile=class_tile, row_block=row_block):
            result = _csr_sums(name, *problem, skip_negligible=skip)
            reference = _csr_sums("naive", *problem, skip_negligible=skip)
        _assert_close(result, reference, dtype)
    # with skipping off, tiled or not, the result is the dense single-pass one
    data, indices, indptr, *rest = problem
    X = sp.csr_matrix((data, indices, indptr), shape=(n, d)).toarray()
    with _tiling.forced(False):
        G, g = np.empty_like(rest[0]), np.empty_like(rest[1])
        dense = get_module("naive").softmax_ce_sums(X, *rest, G, g) + (G, g)
    with _tiling.forced(tiled, class_tile=class_tile, row_block=row_block):
        _assert_close(_csr_sums(name, *problem, skip_negligible=False), dense, dtype)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_skipping_stays_within_its_bound(name, dtype, rng):
    """Tile 1 (entries of 0.9 eps) is skipped, tile 2 (1.1 eps) kept; the loss is exact."""
    require_backend(name)
    eps = _tiling.skip_threshold(dtype)
    p = np.array([0, 0.3, 0.2, 0.2] + [0.9 * eps] * 4 + [1.1 * eps] * 4)
    p[0] = 1 - p.sum()
    n, d = 12, 5
    X = sp.random(n, d, density=0.6, format="csr", random_state=rng, dtype=dtype)
    coef = np.zeros((p.size, d), dtype)
    intercept = np.log(p).astype(dtype)
    y = rng.integers(0, 4, n).astype(np.intp)
    sw = (rng.random(n) + 0.5).astype(dtype)
    problem = (X.data, X.indices, X.indptr, coef, intercept, y, sw)
    with _tiling.forced(True, class_tile=4, row_block=5):
        loss_on, _, G_on, g_on = _csr_sums(name, *problem, skip_negligible=True)
        loss_off, _, G_off, g_off = _csr_sums(name, *problem, skip_negligible=False)
    assert loss_on == loss_off
    expected = np.zeros(p.size)
    expected[4:8] = np.sum(sw) * p[4:8]
    np.testing.assert_allclose(g_off - g_on, expected, rtol=1e-3, atol=1e-3 * eps)
    bound = eps * (sw @ np.abs(X.toarray()))
    assert np.all(np.abs(G_off - G_on) <= bound[None, :] * (1 + 1e-3))
    assert np.abs(G_off - G_on)[4:8].max() > 0
    np.testing.assert_allclose(G_on[8:], G_off[8:], rtol=1e-6, atol=1e-3 * eps)


def test_the_csr_regime_follows_the_logits_of_a_block_of_rows():
    assert _tiling.plan_csr(4096, 4)[0] is False  # 64 rows x 4096 float32 classes: 1 MiB
    tiled, rows, class_tile = _tiling.plan_csr(4097, 4)
    assert tiled and rows == _tiling.CSR_TILE_ROWS and class_tile == 1024
    assert _tiling.plan_csr(2049, 8)[:1] == (True,) and _tiling.plan_csr(2049, 8)[2] == 512
    # the tile's weights of the columns a block of rows may touch stay within 512 kB
    indptr = np.arange(0, 32 * 8193, 32)  # 32 entries a row
    assert _tiling.plan_csr(10000, 4, indptr, 1024)[2] == 128  # 1024 columns x 128 x 4 B
    assert _tiling.plan_csr(10000, 4, indptr, 1 << 18)[2] == 64  # at least 64 classes
    assert _tiling.plan_csr(10000, 4, indptr[:2], 4)[2] == 1024
    with _tiling.forced(True, class_tile=3, row_block=5):
        assert _tiling.plan_csr(10, 4) == (True, 5, 3)


@pytest.mark.parametrize("name", ["cython", "numpy"])
def test_csr_extra_memory_does_not_grow_with_the_number_of_rows(name, rng):
    require_backend(name)
    d, C = 32, 5000  # tiled: 64 rows x 5000 float32 classes are 1.3 MB
    assert _tiling.plan_csr(C, 4)[0]
    coef = rng.normal(size=(C, d)).astype(np.float32)
    intercept = np.zeros(C, np.float32)
    peaks = {}
    for n in (1024, 4096):
        X = sp.random(n, d, density=0.05, format="csr", random_state=rng, dtype=np.float32)
        y = rng.integers(0, C, n).astype(np.intp)
        G, g = np.empty_like(coef), np.empty_like(intercept)
        kernels = get_module(name)
        call = lambda: kernels.softmax_ce_sums_csr(  # noqa: E731
            X.data, X.indices, X.indptr, coef, intercept, y, None, G, g)  # fmt: skip
        call()  # warm-up
        peaks[n] = _peak_traced_bytes(call)
    assert peaks[4096] <= peaks[1024] * 1.05 + (1 << 16), peaks
    assert peaks[4096] < 4096 * C * 4 / 4, peaks  # materialising: 82 MB


@pytest.mark.parametrize("name", BACKENDS)
def test_public_function_on_csr_in_the_tiled_regime(name):
    """softmax_cross_entropy_grad on CSR many-class input (W and dW pass as transposed views)."""
    import fastsoftmax

    require_backend(name)
    rng = np.random.default_rng(7)
    n, d, C = 40, 60, 5000  # beyond plan_csr's threshold: the tiled regime
    assert _tiling.plan_csr(C, 4, None, d)[0]
    X = sp.random(n, d, density=0.1, format="csr", random_state=3, dtype=np.float32)
    W = (0.3 * rng.standard_normal((d, C))).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    y = rng.integers(0, C, n)
    ref = fastsoftmax.softmax_cross_entropy_grad(X.toarray().astype(np.float64), W.astype(np.float64),
                                                 b.astype(np.float64), y, backend="numpy",
                                                 skip_negligible=False)  # fmt: skip
    loss, dW, db = fastsoftmax.softmax_cross_entropy_grad(X, W, b, y, backend=name,
                                                          skip_negligible=False)  # fmt: skip
    assert dW.shape == W.shape and dW.dtype == np.float32
    np.testing.assert_allclose(loss, ref[0], rtol=1e-5)
    np.testing.assert_allclose(dW, ref[1], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(db, ref[2], rtol=1e-4, atol=1e-7)
