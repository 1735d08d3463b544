"""The many-class regime of ``softmax_ce_sums`` (issue 14): class tiles, skipping, memory.

Every backend is checked against the naive oracle on small shapes that force
the single-pass and the tiled regime (``_tiling.forced``) with tails of row
blocks and class tiles; the skipping bound is checked on tiles built just
below and just above the threshold; extra memory is checked not to grow with n.
"""

import tracemalloc

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._backends import _tiling, get_module
from conftest import require_backend

BACKENDS = ("naive", "numpy", "numba", "cython")
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-11}


def _problem(rng, n, d, C, x_dtype, weighted, scale=2.0):
    F = np.float64 if x_dtype == np.uint8 else x_dtype
    if x_dtype == np.uint8:
        X = rng.integers(0, 4, (n, d)).astype(np.uint8)
    else:
        X = rng.normal(size=(n, d)).astype(F)
    coef = (scale * rng.normal(size=(C, d)) / np.sqrt(d)).astype(F)
    intercept = (3 * rng.normal(size=C)).astype(F)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = rng.random(n).astype(F) + 0.1 if weighted else None
    return X, coef, intercept, y, sw


def _sums(name, X, coef, intercept, y, sw, **options):
    G = np.full(coef.shape, np.nan, coef.dtype)  # every entry must be written
    g = np.full(coef.shape[0], np.nan, coef.dtype)
    loss, total = get_module(name).softmax_ce_sums(X, coef, intercept, y, sw, G, g, **options)
    return loss, total, G, g


def _assert_close(result, reference, dtype):
    tol = TOLERANCE[np.float64 if dtype == np.uint8 else dtype]
    loss, total, G, g = result
    ref_loss, ref_total, ref_G, ref_g = reference
    assert total == pytest.approx(ref_total, rel=1e-12)
    assert loss == pytest.approx(ref_loss, rel=tol, abs=tol)
    np.testing.assert_allclose(G, ref_G, rtol=tol, atol=tol * max(1.0, np.abs(ref_G).max(initial=0)))
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol * max(1.0, np.abs(ref_g).max(initial=0)))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize(
    "n, d, C, class_tile, row_block",
    [(0, 3, 7, 3, 4), (1, 5, 9, 4, 4), (13, 6, 23, 5, 8), (37, 17, 41, 16, 16), (50, 9, 12, 40, 48)],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_every_backend_matches_naive_in_both_regimes(
    name, x_dtype, tiled, n, d, C, class_tile, row_block, weighted, rng
):
    require_backend(name)
    problem = _problem(rng, n, d, C, x_dtype, weighted)
    for skip in (True, False):
        # the compiled tiled kernel keeps a block's logits for pass B or recomputes them
        for store in (True, False) if name == "cython" else (None,):
            with _tiling.forced(tiled, class_tile=class_tile, row_block=row_block,
                                store_logits=store):  # fmt: skip
                result = _sums(name, *problem, skip_negligible=skip)
                reference = _sums("naive", *problem, skip_negligible=skip)
            _assert_close(result, reference, x_dtype)
    # tiled or not, with skipping off, the result is the plain single-pass one
    with _tiling.forced(False):
        single = _sums("naive", *problem)
    with _tiling.forced(tiled, class_tile=class_tile, row_block=row_block):
        _assert_close(_sums(name, *problem, skip_negligible=False), single, x_dtype)


def test_the_regime_follows_the_size_of_a_block_of_logits():
    assert _tiling.plan(256, 1000, 4)[0] is False  # 128 rows x 1000 classes: 512 kB
    tiled, rows, class_tile = _tiling.plan(256, 10000, 4)
    assert tiled and rows == 128 and class_tile % 40 == 0
    assert _tiling.plan(784, 10, 4, 1)[0] is False
    with _tiling.forced(True, class_tile=3, row_block=5):
        assert _tiling.plan(256, 10, 4) == (True, 5, 3)
    assert _tiling.plan(256, 10, 4)[0] is False  # restored
    assert _tiling.stored_rows(192, 50000, 4) == 192  # 37 MB of logits kept for pass B
    assert _tiling.stored_rows(192, 100000, 4) == 96
    assert _tiling.stored_rows(192, 256000, 4) == 0  # recomputed


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_skipping_stays_within_its_bound_at_the_threshold(name, dtype, rng):
    """Tiles of classes whose softmax entries sit just below (skipped) and just above (kept)
    the threshold eps: the loss is unchanged, the gradient moves by at most eps sum s |x|."""
    require_backend(name)
    eps = _tiling.skip_threshold(dtype)
    assert eps == np.finfo(dtype).eps
    tile, n, d = 4, 12, 3
    # identical logits in every row, set by the intercept: tile 0 holds the labels, tile 1
    # entries of 0.9 eps (skipped), tile 2 entries of 1.1 eps (kept), tile 3 mixed
    p = np.array([0, 0.3, 0.2, 0.2] + [0.9 * eps] * 4 + [1.1 * eps] * 4 + [0.5 * eps] * 3 + [2 * eps])
    p[0] = 1 - p.sum()
    X = rng.normal(size=(n, d)).astype(dtype)
    coef = np.zeros((p.size, d), dtype)
    intercept = np.log(p).astype(dtype)
    y = rng.integers(0, 4, n).astype(np.intp)
    y[3] = 7  # this row's label lies in tile 1: the tile is kept for that row
    sw = (rng.random(n) + 0.5).astype(dtype)
    for store in (True, False) if name == "cython" else (None,):
        _check_skipping_bound(name, X, coef, intercept, y, sw, p, tile, store, eps)


def _check_skipping_bound(name, X, coef, intercept, y, sw, p, tile, store, eps):
    n = X.shape[0]
    with _tiling.forced(True, class_tile=tile, row_block=5, store_logits=store):
        loss_on, _, G_on, g_on = _sums(name, X, coef, intercept, y, sw, skip_negligible=True)
        loss_off, _, G_off, g_off = _sums(name, X, coef, intercept, y, sw, skip_negligible=False)
    assert loss_on == loss_off  # pass A is exact: the skipping never touches the loss
    skipped = np.ones(n, bool)
    skipped[3] = False
    expected = np.zeros(p.size)  # the skipped part of the intercept gradient
    expected[4:8] = np.sum(sw[skipped]) * p[4:8]
    # (class 7 holds row 3's -1: its difference is only good to the rounding of that sum)
    atol = np.where(np.arange(p.size) == 7, 2 * eps * np.sum(sw), 1e-3 * eps)
    assert np.all(np.abs((g_off - g_on) - expected) <= 1e-3 * expected + atol), g_off - g_on
    bound_g = eps * np.sum(sw)
    bound_G = eps * (sw @ np.abs(X))
    assert np.all(np.abs(g_off - g_on) <= bound_g)
    assert np.all(np.abs(G_off - G_on) <= bound_G[None, :] * (1 + 1e-3))
    assert np.abs(G_off - G_on)[4:8].max() > 0  # tile 1 was skipped ...
    # ... and the kept tiles 2 and 3 agree up to rounding
    np.testing.assert_allclose(G_on[8:], G_off[8:], rtol=1e-6, atol=1e-3 * eps)
    relative = np.linalg.norm(G_off - G_on) / np.linalg.norm(G_off)
    assert relative <= eps * np.sqrt(p.size)


def _peak_traced_bytes(call):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["cython", "numpy"])
def test_extra_memory_does_not_grow_with_the_number_of_rows(name, rng):
    # tracemalloc sees numpy's allocations, which are all the scratch these backends take
    require_backend(name)
    d, C = 16, 6000
    coef = rng.normal(size=(C, d)).astype(np.float32)
    intercept = np.zeros(C, np.float32)
    peaks = {}
    for n in (2048, 8192):
        X = rng.normal(size=(n, d)).astype(np.float32)
        y = rng.integers(0, C, n).astype(np.intp)
        G, g = np.empty_like(coef), np.empty_like(intercept)
        kernels = get_module(name)
        peaks[n] = _peak_traced_bytes(
            lambda: kernels.softmax_ce_sums(X, coef, intercept, y, None, G, g)
        )
    logits_bytes = 8192 * C * 4  # what materialising would cost: 197 MB
    assert peaks[8192] <= peaks[2048] * 1.05 + (1 << 16), peaks
    assert peaks[8192] < logits_bytes / 4, peaks


def test_public_gradient_uses_the_tiled_regime_and_agrees(rng):
    n, d, C = 40, 256, 3000  # 128 rows x 3000 classes of float32 do not fit in L2
    assert _tiling.plan(d, C, 4)[0]
    X = rng.normal(size=(n, d)).astype(np.float32)
    W = (0.1 * rng.normal(size=(d, C))).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    y = rng.integers(0, C, n)
    loss, dW, db = fastsoftmax.softmax_cross_entropy_grad(X, W, b, y)
    with _tiling.forced(False):
        ref_loss, ref_dW, ref_db = fastsoftmax.softmax_cross_entropy_grad(X, W, b, y, backend="numpy")
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(dW, ref_dW, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(db, ref_db, rtol=1e-4, atol=1e-6)
