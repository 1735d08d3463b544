"""The public switch of the many-class skipping (issue 14): ``skip_negligible``.

``softmax_cross_entropy_grad`` and ``linear_cross_entropy`` pass it to the
fused kernel through ``_objective.softmax_loss_grad``.  On tiles built just
below the threshold (as in test_many_classes.py), True leaves them out of the
gradient and False keeps them: each check fails if the switch is ignored.
"""

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._backends import _tiling
from conftest import require_backend

BACKENDS = ("naive", "numpy", "numba", "cython")


def _near_threshold_problem(dtype, rng):
    """Tile 0 (classes 0-3) holds the labels, tile 1 entries of 0.9 eps (skipped), tile 2 1.1 eps."""
    eps = _tiling.skip_threshold(dtype)
    p = np.array([0, 0.3, 0.2, 0.2] + [0.9 * eps] * 4 + [1.1 * eps] * 4)
    p[0] = 1 - p.sum()
    n, d = 12, 3
    X = rng.normal(size=(n, d)).astype(dtype)
    coef = np.zeros((p.size, d), dtype)
    intercept = np.log(p).astype(dtype)
    y = rng.integers(0, 4, n).astype(np.intp)
    sw = (rng.random(n) + 0.5).astype(dtype)
    return X, coef, intercept, y, sw, p, eps


def _check_switch(grads, X, sw, p, eps):
    """grads[skip] = (dW (C, d), db): tile 1 moves by sum s p (db) within eps sum s |x| (dW)."""
    (dW_on, db_on), (dW_off, db_off) = grads[True], grads[False]
    expected = np.zeros(p.size)
    expected[4:8] = np.sum(sw) * p[4:8]
    np.testing.assert_allclose(db_off - db_on, expected, rtol=1e-3, atol=1e-3 * eps)
    assert np.abs(dW_off - dW_on)[4:8].min() > 0
    assert np.all(np.abs(dW_off - dW_on) <= eps * (sw @ np.abs(X))[None, :] * (1 + 1e-3))
    np.testing.assert_allclose(dW_on[8:], dW_off[8:], rtol=1e-6, atol=1e-3 * eps)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_grad_honours_skip_negligible(name, dtype, rng):
    require_backend(name)
    X, coef, intercept, y, sw, p, eps = _near_threshold_problem(dtype, rng)
    grads, losses = {}, {}
    with _tiling.forced(True, class_tile=4, row_block=5):
        for skip in (True, False):
            losses[skip], dW, db = fastsoftmax.softmax_cross_entropy_grad(
                X, coef.T, intercept, y, sample_weight=sw, reduction="sum",
                skip_negligible=skip, backend=name,
            )  # fmt: skip
            grads[skip] = dW.T, db
        default = fastsoftmax.softmax_cross_entropy_grad(
            X, coef.T, intercept, y, sample_weight=sw, reduction="sum", backend=name)  # fmt: skip
    assert losses[True] == losses[False]  # the loss is exact either way
    _check_switch(grads, X, sw, p, eps)
    np.testing.assert_array_equal(default[2], grads[True][1])  # on by default


@pytest.mark.parametrize("name", BACKENDS)
def test_linear_cross_entropy_honours_skip_negligible(name, rng):
    require_backend(name)
    X, coef, intercept, y, sw, p, eps = _near_threshold_problem(np.float32, rng)
    grads = {}
    with _tiling.forced(True, class_tile=4, row_block=5):
        for skip in (True, False):
            loss, g = fastsoftmax.linear_cross_entropy(
                X, coef, y, intercept, sample_weight=sw, reduction="sum",
                grad=("weight", "bias"), skip_negligible=skip, backend=name,
            )  # fmt: skip
            grads[skip] = g["weight"], g["bias"]
    _check_switch(grads, X, sw, p, eps)


def test_skip_negligible_must_be_a_bool(rng):
    X, coef, intercept, y, sw, p, eps = _near_threshold_problem(np.float64, rng)
    with pytest.raises(TypeError, match="skip_negligible"):
        fastsoftmax.softmax_cross_entropy_grad(X, coef.T, intercept, y, skip_negligible="no")
    with pytest.raises(TypeError, match="skip_negligible"):
        fastsoftmax.linear_cross_entropy(X, coef, y, grad="weight", skip_negligible=None)
