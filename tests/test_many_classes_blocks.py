"""The register and cache blocks of the compiled tiled regime (issue 14, session 6).

The compiled tiled kernel packs a block's rows in panels of 3 vectors of rows
for the logit tiles (``pack_panels``, sweeps of 128 features), forms the
residual in chunks of ``TILE_GRAD_CHUNK`` rows, multiplies it by the rows in
blocks of 6 classes x 4 vectors of features (``tile_grad``), keeps pass A's
``exp(z - tile max)`` for pass B and compacts the hot rows of a tile
(``tile_scale_rows``).  The small shapes of test_many_classes.py stay inside
one block of each; here the shapes cross them, with a tail in every
dimension (odd C, odd d above 128, rows not a multiple of the row block),
at every instruction-set level, against the naive oracle.  Session 7: pass
A's statistics are computed per panel inside ``tile_logits``, and where not
all tiles' logits fit in the budget only the first tiles keep theirs.
"""

import numpy as np
import pytest

from fastsoftmax._backends import _tiling, get_module
from conftest import require_backend

kernels = pytest.importorskip("fastsoftmax._cython_kernels", reason="Cython extension not built")
from test_cython_build import level  # noqa: E402, F401  (each SIMD level the CPU has)

TOLERANCE = {np.float32: 3e-5, np.float64: 1e-11}


def _problem(rng, n, d, C, x_dtype, spread):
    F = np.float64 if x_dtype == np.uint8 else x_dtype
    if x_dtype == np.uint8:
        X = rng.integers(0, 4, (n, d)).astype(np.uint8)
    else:
        X = rng.normal(size=(n, d)).astype(F)
    coef = (spread * rng.normal(size=(C, d)) / np.sqrt(d * X.astype(F).var())).astype(F)
    intercept = rng.normal(size=C).astype(F)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = (rng.random(n) + 0.1).astype(F)
    return X, coef, intercept, y, sw


def _sums(name, X, coef, intercept, y, sw, skip):
    G = np.full(coef.shape, np.nan, coef.dtype)  # every entry must be written
    g = np.full(coef.shape[0], np.nan, coef.dtype)
    loss, _ = get_module(name).softmax_ce_sums(X, coef, intercept, y, sw, G, g, skip_negligible=skip)
    return loss, G, g


def _assert_close(result, reference, dtype):
    tol = TOLERANCE[dtype]
    (loss, G, g), (ref_loss, ref_G, ref_g) = result, reference
    assert loss == pytest.approx(ref_loss, rel=tol)
    np.testing.assert_allclose(G, ref_G, rtol=tol, atol=tol * np.abs(ref_G).max())
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol * np.abs(ref_g).max())


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize(
    "n, d, C, class_tile, row_block",
    [
        # d = 141: a 128-feature sweep and a 13-feature one; 2 blocks of 64 features, a tail
        # of 13 below one vector; tiles of 47 classes: 7 groups of 6, then 2, 2, 1
        (150, 141, 97, 47, 130),
        # one vector of features after the blocks of 4 (80 = 64 + 16), 3 classes a tile
        (70, 80, 31, 3, 64),
        # a single row, C = 1
        (1, 33, 1, 1, 16),
    ],
)
def test_compiled_tiled_blocks_match_naive(level, x_dtype, n, d, C, class_tile, row_block, rng):
    require_backend("cython")
    F = np.float64 if x_dtype == np.uint8 else x_dtype
    # a spread of 10 makes many (row, tile)s negligible: the hot rows get compacted
    problem = _problem(rng, n, d, C, x_dtype, spread=10.0)
    for skip in (True, False):
        with _tiling.forced(True, class_tile=class_tile, row_block=row_block):
            reference = _sums("naive", *problem, skip)
        for store in (True, False):
            with _tiling.forced(True, class_tile=class_tile, row_block=row_block,
                                store_logits=store):  # fmt: skip
                _assert_close(_sums("cython", *problem, skip), reference, F)


def test_skipping_compacts_rows_in_the_compiled_kernel():
    """The shape of the test above skips (row, tile)s: its skipped gradient differs from the
    exact one (else the compacted path would go untested), within the documented bound."""
    require_backend("cython")
    rng = np.random.default_rng(0)  # (a seed whose tiles keep all, most and half the rows)
    X, coef, intercept, y, sw = _problem(rng, 150, 141, 97, np.float32, spread=10.0)
    logits = X.astype(np.float64) @ coef.T + intercept
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    tiles = np.maximum.reduceat(log_p, np.arange(0, 97, 47), axis=1)
    negligible = tiles < np.log(_tiling.skip_threshold(np.float32))
    # in the first block (130 rows) some tiles keep all rows, some more than one chunk's
    # worth but not all, some fewer
    assert 0.1 < negligible.mean() < 0.9
    kept = (~negligible[:130]).sum(axis=0)
    assert kept.max() == 130 and np.any((kept > kernels.TILE_GRAD_CHUNK) & (kept < 130))
    with _tiling.forced(True, class_tile=47, row_block=130, store_logits=True):
        loss_on, G_on, g_on = _sums("cython", X, coef, intercept, y, sw, True)
        loss_off, G_off, g_off = _sums("cython", X, coef, intercept, y, sw, False)
    assert loss_on == loss_off
    assert np.abs(G_on - G_off).max() > 0
    eps = _tiling.skip_threshold(np.float32)
    bound = eps * (sw @ np.abs(X)) * 1.01 + 1e-5 * np.abs(G_off).max()
    assert np.all(np.abs(G_on - G_off) <= bound[None, :])


def test_the_gradient_chunk_is_a_multiple_of_the_vector_width():
    # pass B's residual chunks are formed 16 float32 rows at a time
    assert kernels.TILE_GRAD_CHUNK % 16 == 0


def test_single_pass_regime_by_the_tiled_kernel_never_skips():
    """From COMPILED_TILED_MIN_CLASSES classes the compiled backend computes the single-pass
    regime with its tiled kernel: exact, no skipping, whatever skip_negligible says."""
    require_backend("cython")
    assert not _tiling.compiled_tiles_for_single_pass(199, 40, 1)
    assert _tiling.compiled_tiles_for_single_pass(200, 240, 1)
    assert not _tiling.compiled_tiles_for_single_pass(480, 240, 2)  # 2 tiles for 2 threads
    assert _tiling.compiled_tiles_for_single_pass(2000, 240, 2)
    with _tiling.forced(False):
        assert not _tiling.compiled_tiles_for_single_pass(2000, 240, 1)
    rng = np.random.default_rng(1)
    n, d, C = 300, 40, 300
    X, coef, intercept, y, sw = _problem(rng, n, d, C, np.float32, spread=10.0)
    assert not _tiling.plan(d, C, 4)[0]  # the single-pass regime
    reference = _sums("naive", X, coef, intercept, y, sw, True)
    with _tiling.forced(True, class_tile=10):  # the tiled regime would skip here
        assert np.abs(_sums("naive", X, coef, intercept, y, sw, True)[1] - reference[1]).max() > 0
    _assert_close(_sums("cython", X, coef, intercept, y, sw, True), reference, np.float32)


def test_two_threads_own_class_tiles():
    """Two threads share the tiles of each block (per-thread residual, hot-row and panel
    scratch; the block's packed rows shared): the same sums as naive."""
    require_backend("cython")
    import fastsoftmax

    rng = np.random.default_rng(2)
    problem = _problem(rng, 300, 141, 97, np.float32, spread=10.0)
    before = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(2)
    try:
        for skip in (True, False):
            with _tiling.forced(True, class_tile=7, row_block=130):
                reference = _sums("naive", *problem, skip)
            for store in (True, False):
                with _tiling.forced(True, class_tile=7, row_block=130, store_logits=store):
                    _assert_close(_sums("cython", *problem, skip), reference, np.float32)
    finally:
        fastsoftmax.set_num_threads(before)


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("threads", [1, 2])
def test_logits_kept_for_the_first_tiles_only(x_dtype, threads):
    """Beyond the memory of all tiles' kept logits (C = 256,000 float32 at 192 rows), the first
    tiles keep theirs and pass B recomputes the others': every split matches naive, with the
    skipping on and off, one thread or two (whose next tile may be of either kind)."""
    require_backend("cython")
    import fastsoftmax

    F = np.float64 if x_dtype == np.uint8 else x_dtype
    rng = np.random.default_rng(3)
    problem = _problem(rng, 300, 141, 97, x_dtype, spread=10.0)  # 14 tiles of 7, 3 blocks
    before = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(threads)
    try:
        for skip in (True, False):
            with _tiling.forced(True, class_tile=7, row_block=130):
                reference = _sums("naive", *problem, skip)
            for kept in (1, 2, 7, 13):
                with _tiling.forced(True, class_tile=7, row_block=130, store_logits=kept):
                    assert _tiling.stored_tiles(130, 97, 7, 4) == kept
                    _assert_close(_sums("cython", *problem, skip), reference, F)
    finally:
        fastsoftmax.set_num_threads(before)


def test_the_kept_tiles_fit_the_memory_budget():
    # all tiles' logits of 192-row blocks fit up to about 54,000 float32 classes
    assert _tiling.stored_rows(192, 256000, 4) == 0
    kept = _tiling.stored_tiles(192, 256000, 240, 4)
    assert kept == 227  # a fifth of the 1,067 tiles
    assert kept * 240 * 192 * 4 <= _tiling.STORED_LOGITS_BYTES < (kept + 1) * 240 * 192 * 4
    assert _tiling.stored_tiles(192, 1000, 240, 4) == 5  # all of them
    with _tiling.forced(True, store_logits=False):
        assert _tiling.stored_tiles(192, 256000, 240, 4) == 0
    with _tiling.forced(True, store_logits=True):
        assert _tiling.stored_tiles(192, 256000, 240, 4) == 1067
