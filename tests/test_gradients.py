"""Gradients of the fused loss kernels against central finite differences (float64).

For every available backend, the objectives of :mod:`fastsoftmax._objective`
(``softmax_loss_grad`` and ``logistic_loss_grad``, on the backend's thin
kernels) are called directly on small problems.  Their loss is
checked against an independent SciPy computation, and their gradient against
central differences of that loss, with and without ``l2`` and
``sample_weight``.
"""

import numpy as np
import pytest
from scipy.special import log_expit, log_softmax

from fastsoftmax import _objective
from fastsoftmax._backends import get_module

N, D, C = 7, 4, 3
H = 1e-6  # central differences: truncation O(H^2), rounding O(eps / H), both ~1e-10
FD_TOL = dict(rtol=1e-6, atol=1e-8)

L2_VALUES = [0.0, 0.7]
WEIGHTS = [None, "weighted"]


@pytest.fixture
def mod(backend_name):
    return get_module(backend_name)


def _weights(rng, kind):
    if kind is None:
        return None
    weights = rng.uniform(0.2, 3.0, size=N)
    weights[2] = 0.0  # a zero weight drops its sample
    return weights


def _central_differences(f, params):
    """d f / d params, one coordinate at a time; ``params`` is perturbed and restored."""
    grad = np.zeros_like(params)
    for index in np.ndindex(params.shape):
        saved = params[index]
        params[index] = saved + H
        up = f()
        params[index] = saved - H
        down = f()
        params[index] = saved
        grad[index] = (up - down) / (2 * H)
    return grad


# -- multinomial -----------------------------------------------------------------------


def _softmax_problem(rng, x_kind="float"):
    if x_kind == "uint8":
        X = rng.integers(0, 256, size=(N, D), dtype=np.uint8)
        W = rng.standard_normal((D, C)) / 255.0
    else:
        X = rng.standard_normal((N, D))
        W = rng.standard_normal((D, C))
    b = rng.standard_normal(C)
    y = rng.integers(0, C, size=N).astype(np.intp)
    y[:C] = np.arange(C)  # every class present
    return X, W, b, y


def _backend(mod):
    return mod.__name__.rsplit(".", 1)[-1]


def _softmax_loss_grad(mod, X, W, b, y, sample_weight, l2):
    # the objective on the backend's thin kernel, in the (d, C) layout of W
    loss, coef_grad, db = _objective.softmax_loss_grad(
        X, np.ascontiguousarray(W.T), b, y, sample_weight, l2, backend=_backend(mod)
    )
    return loss, coef_grad.T, db


def _softmax_loss_scipy(X, W, b, y, sample_weight, l2):
    # Independent of every backend: scipy's log_softmax of the logits.
    nll = -log_softmax(X.astype(np.float64) @ W + b, axis=1)[np.arange(len(y)), y]
    weights = np.ones(len(y)) if sample_weight is None else sample_weight
    return float(weights @ nll / weights.sum() + 0.5 * l2 * np.sum(W**2))


def test_softmax_cross_entropy_loss_of_one_hot_logits(mod):
    # Closed form: two classes with logits (0, log 3) give CE log(4) and log(4/3).
    X = np.eye(2)
    W = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    y = np.array([0, 1], dtype=np.intp)
    loss, dW, db = _softmax_loss_grad(mod, X, W, np.zeros(2), y, None, 0.0)
    assert loss == pytest.approx((np.log(4.0) + np.log(4.0 / 3.0)) / 2, rel=1e-14)
    # P = (1/4, 3/4) on both rows; P - Y = (-3/4, 3/4) and (1/4, -1/4), each / 2.
    np.testing.assert_allclose(dW, [[-3 / 8, 3 / 8], [1 / 8, -1 / 8]], rtol=1e-14)
    np.testing.assert_allclose(db, [-1 / 4, 1 / 4], rtol=1e-14, atol=1e-16)


# -- binary --------------------------------------------------------------------------------


def _binary_problem(rng, x_kind="float"):
    X, W, b, _ = _softmax_problem(rng, x_kind)
    y = rng.integers(0, 2, size=N).astype(np.float64)
    y[:2] = [0.0, 1.0]
    return X, W[:, 0].copy(), np.array([b[0]]), y


def _logistic_loss_grad(mod, X, w, b, y, sample_weight, l2):
    loss, dw, db = _objective.logistic_loss_grad(
        X, w, float(b[0]), y, sample_weight, l2, backend=_backend(mod)
    )
    assert isinstance(db, float)
    return loss, dw, np.array([db])  # db as an array, like b, for the shared tests


def _logistic_loss_scipy(X, w, b, y, sample_weight, l2):
    z = X.astype(np.float64) @ w + b[0]
    nll = -(y * log_expit(z) + (1 - y) * log_expit(-z))
    weights = np.ones(len(y)) if sample_weight is None else sample_weight
    return float(weights @ nll / weights.sum() + 0.5 * l2 * np.sum(w**2))


def test_logistic_loss_with_soft_targets(mod):
    # Closed form at z = 0: log(2) whatever the target, gradient (p - y) = 0.5 - y.
    X = np.zeros((2, 1))
    y = np.array([0.25, 1.0])
    loss, dw, db = _logistic_loss_grad(mod, X, np.zeros(1), np.zeros(1), y, None, 0.0)
    assert loss == pytest.approx(np.log(2.0), rel=1e-14)
    assert db[0] == pytest.approx(((0.5 - 0.25) + (0.5 - 1.0)) / 2, rel=1e-14)
    np.testing.assert_array_equal(dw, [0.0])


# -- both losses: (problem, backend kernel, independent scipy loss) -----------------------

LOSSES = {
    "softmax": (_softmax_problem, _softmax_loss_grad, _softmax_loss_scipy),
    "logistic": (_binary_problem, _logistic_loss_grad, _logistic_loss_scipy),
}


@pytest.mark.parametrize("l2", L2_VALUES)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("loss_kind", LOSSES)
def test_loss_and_finite_differences_of_scipy_loss(mod, loss_kind, x_kind, weights, l2, rng):
    make_problem, kernel, scipy_loss = LOSSES[loss_kind]
    X, W, b, y = make_problem(rng, x_kind)
    sample_weight = _weights(rng, weights)
    loss, dW, db = kernel(mod, X, W, b, y, sample_weight, l2)

    def f():
        return scipy_loss(X, W, b, y, sample_weight, l2)

    assert isinstance(loss, float)
    assert loss == pytest.approx(f(), rel=1e-12)
    np.testing.assert_allclose(dW, _central_differences(f, W), **FD_TOL)
    np.testing.assert_allclose(db, _central_differences(f, b), **FD_TOL)


@pytest.mark.parametrize("l2", L2_VALUES)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("loss_kind", LOSSES)
def test_gradient_is_derivative_of_backend_loss(mod, loss_kind, weights, l2, rng):
    # The backend's own loss, differentiated: its loss and gradient are consistent.
    make_problem, kernel, _ = LOSSES[loss_kind]
    X, W, b, y = make_problem(rng)
    sample_weight = _weights(rng, weights)
    _, dW, db = kernel(mod, X, W, b, y, sample_weight, l2)

    def f():
        return kernel(mod, X, W, b, y, sample_weight, l2)[0]

    np.testing.assert_allclose(dW, _central_differences(f, W), **FD_TOL)
    np.testing.assert_allclose(db, _central_differences(f, b), **FD_TOL)
