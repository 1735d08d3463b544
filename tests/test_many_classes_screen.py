"""Pass A's screening of the compiled float32 tiled kernel (issue 14, session 8).

Where the CPU has the AMX bfloat16 tiles, pass A bounds every (row, tile)'s
logits from a bfloat16 product (``fs_tile_screen.h``) and computes in float32
only the rows of a tile whose upper bound reaches ``log(eps / C)`` above a
lower bound of the row's log-sum-exp: the loss of each row stays within
``s_i eps`` of the unscreened (exact) one, the gradient within the skipping's
bound.  The bound itself is checked on inputs that make the bfloat16 rounding
as bad, and as coherent, as it gets.
"""

import numpy as np
import pytest

from fastsoftmax._backends import _tiling, cython as cython_backend, get_module

kernels = pytest.importorskip("fastsoftmax._cython_kernels", reason="Cython extension not built")
pytestmark = pytest.mark.skipif(not kernels.screen_available(),
                                reason="no AMX bfloat16 tiles on this machine")  # fmt: skip
EPS = float(np.finfo(np.float32).eps)


def _exact_logits(X, coef, intercept):
    return X.astype(np.float64) @ coef.astype(np.float64).T + intercept.astype(np.float64)


def _worst_rounding(rng, n, d):
    # entries just below the midpoint between two bfloat16 neighbours (relative error ~2^-8,
    # the largest), of one sign: x and w aligned, so that the errors add up
    mantissa = 1 + 2.0**-8 - 2.0**-18
    return (mantissa * 2.0 ** rng.integers(-3, 3, (n, d))).astype(np.float32)


@pytest.mark.parametrize("d", [1, 31, 32, 77, 256])
def test_screen_bounds_hold_for_the_worst_rounding(d):
    rng = np.random.default_rng(d)
    X = _worst_rounding(rng, 37, d)
    coef = np.concatenate([_worst_rounding(rng, 20, d), X[:5],  # aligned with rows: coherent errors
                           rng.normal(size=(9, d)).astype(np.float32)])  # fmt: skip
    intercept = rng.normal(size=coef.shape[0]).astype(np.float32)
    upper, lower = kernels.screen_bounds(X, coef, intercept)
    exact = _exact_logits(X, coef, intercept)
    assert np.all(upper >= exact) and np.all(lower <= exact)
    # and not uselessly loose: within 2% of ||x|| ||w|| (the bound and the error each up to 0.8%)
    scale = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(coef, axis=1)[None]
    assert np.all(upper - exact <= 0.02 * scale + 1e-30)
    # the aligned pairs come close to the bound: it is not slack by construction
    gap = (exact - (upper + lower) / 2)[np.arange(5), 20 + np.arange(5)]
    half = ((upper - lower) / 2)[np.arange(5), 20 + np.arange(5)]
    assert np.all(np.abs(gap) > 0.3 * half)


def test_screen_bounds_of_rows_not_screened():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 40)).astype(np.float32)
    X[2] = 1e31  # bfloat16 could overflow there: no bound
    coef = rng.normal(size=(7, 40)).astype(np.float32)
    upper, lower = kernels.screen_bounds(X, coef, np.zeros(7, np.float32))
    assert np.all(np.isposinf(upper[2])) and np.all(np.isneginf(lower[2]))
    assert np.all(np.isfinite(upper[[0, 1, 3, 4]]))


def _peaked_problem(rng, n, d, C, x_dtype=np.float32):
    """Rows of well-separated classes (most tiles negligible), and a few rows with tiles
    near the skipping thresholds: logits at log-probabilities log(eps) + k for small k."""
    centres = rng.normal(size=(C, d))
    y = rng.integers(0, C, n).astype(np.intp)
    if x_dtype == np.uint8:
        X = rng.integers(0, 3, (n, d)).astype(np.uint8)
        coef = (rng.normal(size=(C, d)) / np.sqrt(d)).astype(np.float32)
        coef[y] += 10 * (X.astype(np.float32) - 1) / np.sqrt(d)
    else:
        X = (centres[y] + 0.3 * rng.normal(size=(n, d))).astype(x_dtype)
        coef = (12 * centres / np.sqrt(d)).astype(np.float32)
    intercept = np.zeros(C, np.float32)
    # near-threshold tiles: class k of row k lifted to log(eps) + (k % 7 - 2) off the row's max
    Z = _exact_logits(X, coef, intercept)
    for i in range(min(n, 40)):
        c = (y[i] + 1 + 37 * i) % C
        intercept[c] += np.float32(Z[i].max() + np.log(EPS) + (i % 7 - 2) - Z[i, c])
    sw = (rng.random(n) + 0.5).astype(np.float32)
    return X, coef, intercept, y, sw


def _pass(X, coef, intercept, y, sw, *, skip, screen, class_tile=48, threads=1):
    G = np.full(coef.shape, np.nan, np.float32)
    g = np.full(coef.shape[0], np.nan, np.float32)
    counts = np.zeros(4, np.intp)
    cython_backend.pass_counts = counts
    import fastsoftmax

    saved = fastsoftmax.get_num_threads() if hasattr(fastsoftmax, "get_num_threads") else None
    try:
        fastsoftmax.set_num_threads(threads)
        with _tiling.forced(True, class_tile=class_tile, screen=screen):
            loss, _ = cython_backend.softmax_ce_sums(X, coef, intercept, y, sw, G, g,
                                                     skip_negligible=skip)  # fmt: skip
    finally:
        cython_backend.pass_counts = None
        if saved is not None:
            fastsoftmax.set_num_threads(saved)
    return loss, G, g, counts


@pytest.mark.parametrize("x_dtype", [np.float32, np.uint8])
@pytest.mark.parametrize("n, d, C", [(1, 33, 300), (203, 77, 1001), (530, 256, 2000)])
def test_screened_pass_within_the_bound(n, d, C, x_dtype):
    rng = np.random.default_rng(n + d + C)
    X, coef, intercept, y, sw = _peaked_problem(rng, n, d, C, x_dtype)
    loss, G, g, counts = _pass(X, coef, intercept, y, sw, skip=True, screen=True)
    plain_loss, plain_G, plain_g, plain_counts = _pass(X, coef, intercept, y, sw, skip=True,
                                                       screen=False)  # fmt: skip
    ref_loss, ref_G, ref_g, _ = _pass(X, coef, intercept, y, sw, skip=False, screen=False)
    ntiles = -(-C // 48)
    assert counts[0] == plain_counts[0] == n * ntiles
    assert plain_counts[1] == n * ntiles  # unscreened: pass A computes every pair
    assert counts[1] < 0.6 * counts[0]  # the screening spares pass A most of this problem
    assert counts[2] == plain_counts[2]  # pass B's hot pairs: those of the exact pass A
    assert counts[3] == n and plain_counts[3] == 0  # rows screened
    # the loss: each row's within s_i eps below the exact one
    assert plain_loss == ref_loss
    # (the exponentials left out only lower it)
    rounding = 1e-9 * abs(ref_loss) + 1e-15
    assert -EPS * sw.sum() - rounding <= loss - ref_loss <= rounding
    # the gradient: the skipping's bound eps sum_i s_i |x_ij| (eps (1 + eps) with the
    # screening's lower log-sum-exp), plus float32 rounding
    Xf = X.astype(np.float64)
    bound = 2 * EPS * (sw[:, None] * np.abs(Xf)).sum(axis=0)
    rounding = 3e-5 * np.abs(ref_G).max()
    assert np.all(np.abs(G.astype(np.float64) - plain_G) <= bound[None] + rounding)
    assert np.all(np.abs(g.astype(np.float64) - plain_g) <= 2 * EPS * sw.sum() + 3e-5 * np.abs(ref_g).max())
    # and against the numpy backend (exact, skipping off)
    naive_G, naive_g = np.empty_like(coef), np.empty_like(intercept)
    naive_loss, _ = get_module("numpy").softmax_ce_sums(X, coef, intercept, y, sw, naive_G, naive_g,
                                                        skip_negligible=False)  # fmt: skip
    assert loss == pytest.approx(naive_loss, rel=3e-5, abs=4 * EPS * float(sw.sum()))
    tol = 3e-5 * (np.abs(naive_G) + np.abs(naive_G).max())
    assert np.all(np.abs(G.astype(np.float64) - naive_G) <= bound[None] + tol)
    tol = 3e-5 * (np.abs(naive_g) + np.abs(naive_g).max())
    assert np.all(np.abs(g.astype(np.float64) - naive_g) <= 2 * EPS * sw.sum() + tol)


def test_screened_pass_is_the_same_on_two_threads():
    rng = np.random.default_rng(5)
    X, coef, intercept, y, sw = _peaked_problem(rng, 300, 64, 1500)
    one = _pass(X, coef, intercept, y, sw, skip=True, screen=True, threads=1)
    two = _pass(X, coef, intercept, y, sw, skip=True, screen=True, threads=2)
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[2], two[2])
    np.testing.assert_array_equal(one[3], two[3])


def test_screening_rests_where_nothing_can_be_skipped():
    # random weights: every (row, tile) matters; the screening stops after a block and the
    # result is bit for bit the unscreened one
    rng = np.random.default_rng(6)
    X = rng.normal(size=(2000, 256)).astype(np.float32)
    coef = (0.05 * rng.normal(size=(1200, 256))).astype(np.float32)
    intercept = np.zeros(1200, np.float32)
    y = rng.integers(0, 1200, 2000).astype(np.intp)
    screened = _pass(X, coef, intercept, y, None, skip=True, screen=True)
    plain = _pass(X, coef, intercept, y, None, skip=True, screen=False)
    assert screened[3][1] == screened[3][0]
    # blocks of 192 rows (d = 256 float32), screened 4 at a time: the first 4, then 8 rest
    assert screened[3][3] < 2000 / 2
    assert screened[0] == plain[0]
    np.testing.assert_array_equal(screened[1], plain[1])


def test_no_screening_without_skipping_or_for_float64():
    rng = np.random.default_rng(7)
    X, coef, intercept, y, sw = _peaked_problem(rng, 100, 32, 500)
    assert _pass(X, coef, intercept, y, sw, skip=False, screen=True)[3][1] == 100 * 11
    X64, coef64 = X.astype(np.float64), coef.astype(np.float64)
    G, g = np.empty_like(coef64), np.empty(500)
    counts = np.zeros(4, np.intp)
    cython_backend.pass_counts = counts
    try:
        with _tiling.forced(True, class_tile=48, screen=True):
            cython_backend.softmax_ce_sums(X64, coef64, intercept.astype(np.float64), y,
                                           sw.astype(np.float64), G, g)  # fmt: skip
    finally:
        cython_backend.pass_counts = None
    assert counts[1] == counts[0] == 100 * 11
