"""The newton-cholesky and newton-cg solvers (fastsoftmax._newton) are scikit-learn's.

Same coefficients, iteration counts, warnings and fallback to L-BFGS as
scikit-learn's solvers of the same names; the Hessian and its products are
checked against finite differences of the gradient, independently of
scikit-learn.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from fastsoftmax import LogisticRegression
from fastsoftmax import _newton

sklearn = pytest.importorskip("sklearn")
from scipy.linalg import LinAlgWarning  # noqa: E402
from sklearn.datasets import load_iris, make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402

NEWTON = ["newton-cholesky", "newton-cg"]


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)  # unscaled: L-BFGS needs many iterations here
    return X, y


@pytest.fixture(scope="module")
def weighted():
    X, y = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)  # fmt: skip
    sample_weight = np.random.default_rng(0).uniform(0.2, 3.0, size=y.shape[0])
    return X, y, sample_weight


def _fit_both(solver, X, y, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkLogisticRegression(solver=solver, **params).fit(X, y, sample_weight)
        ours = LogisticRegression(solver=solver, **params).fit(X, y, sample_weight)
    return ours, theirs


def _symmetric(clf):
    """coef_ and intercept_ summing to 0 over the classes (the softmax's free shift removed)."""
    if clf.coef_.shape[0] == 1:
        return clf.coef_, clf.intercept_
    return clf.coef_ - clf.coef_.mean(axis=0), clf.intercept_ - clf.intercept_.mean()


@pytest.mark.parametrize("C", [1.0, 0.01, np.inf])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("solver", NEWTON)
def test_same_coefficients_and_iterations_as_sklearn(iris, solver, binary, fit_intercept, C):
    X, y = iris
    if binary:
        y = (y == 2).astype(int)
    ours, theirs = _fit_both(solver, X, y, C=C, fit_intercept=fit_intercept, tol=1e-8,
                             max_iter=300)  # fmt: skip
    # the same algorithm on the same objective: the same number of steps
    np.testing.assert_array_equal(ours.n_iter_, theirs.n_iter_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)
    if np.isinf(C):
        # no penalty: the objective is so flat here that points with gradients below 1e-8
        # are up to 9 apart (scikit-learn's own newton-cg and newton-cholesky are)
        return
    coef, intercept = _symmetric(ours)
    sk_coef, sk_intercept = _symmetric(theirs)
    np.testing.assert_allclose(coef, sk_coef, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(intercept, sk_intercept, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("solver", NEWTON)
def test_sample_and_class_weights_match_sklearn(weighted, solver):
    X, y, sample_weight = weighted
    ours, theirs = _fit_both(solver, X, y, sample_weight, class_weight={0: 2.0, 1: 0.5},
                             C=0.3, tol=1e-8)  # fmt: skip
    np.testing.assert_array_equal(ours.n_iter_, theirs.n_iter_)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("solver", NEWTON)
def test_float32_stays_float32_and_matches_sklearn(weighted, solver):
    X, y, _ = weighted
    ours, theirs = _fit_both(solver, X.astype(np.float32), y, C=0.3, tol=1e-4)
    assert ours.coef_.dtype == np.float32 and ours.intercept_.dtype == np.float32
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("solver", NEWTON)
def test_csr_and_uint8_data_give_the_dense_float_result(solver):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(200, 12)).astype(np.uint8)
    X[rng.random(X.shape) < 0.6] = 0
    y = rng.integers(0, 3, size=200)
    dense = LogisticRegression(solver=solver, tol=1e-10).fit(X.astype(np.float64), y)
    for data in (X, sp.csr_matrix(X.astype(np.float64))):
        other = LogisticRegression(solver=solver, tol=1e-10).fit(data, y)
        np.testing.assert_array_equal(other.n_iter_, dense.n_iter_)
        np.testing.assert_allclose(other.coef_, dense.coef_, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(other.intercept_, dense.intercept_, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("C", [1.0, np.inf])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("solver", NEWTON)
def test_warm_start_continues_the_same_iterations(iris, solver, fit_intercept, C):
    X, y = iris
    params = dict(solver=solver, fit_intercept=fit_intercept, C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = LogisticRegression(max_iter=2, **params).fit(X, y)
        warm = LogisticRegression(max_iter=1, warm_start=True, **params).fit(X, y).fit(X, y)
        three = LogisticRegression(max_iter=3, **params).fit(X, y)
    np.testing.assert_allclose(warm.coef_, two.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(warm.intercept_, two.intercept_, rtol=1e-10, atol=1e-12)
    assert not np.allclose(three.coef_, two.coef_)  # each fit took its steps


@pytest.mark.parametrize("max_iter", [1, 3])
@pytest.mark.parametrize(
    "solver, message",
    [
        ("newton-cholesky", "Newton solver did not converge after {} iterations"),
        ("newton-cg", "newton-cg failed to converge at loss = .* Increase the number of iter"),
        ("sag", "The max_iter was reached which means the coef_ did not converge"),
        ("saga", "The max_iter was reached which means the coef_ did not converge"),
    ],
)
def test_max_iter_warns_sklearns_message(iris, solver, message, max_iter):
    X, y = iris
    clf = LogisticRegression(solver=solver, max_iter=max_iter, tol=1e-15)
    with pytest.warns(ConvergenceWarning, match=message.format(max_iter)):
        clf.fit(X, (y == 1).astype(int))
    assert clf.n_iter_[0] == max_iter


def test_singular_hessian_falls_back_to_lbfgs_as_sklearn():
    # more features than samples and (almost) no penalty: a singular Hessian
    X, y = make_classification(n_samples=10, n_features=20, random_state=42)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        n_lbfgs = LogisticRegression(C=1e30).fit(X, y).n_iter_[0]
    with pytest.warns(LinAlgWarning, match="singular or very ill-conditioned Hessian"):
        fallback = LogisticRegression(solver="newton-cholesky", C=1e30).fit(X, y)
    assert fallback.n_iter_[0] == n_lbfgs  # the hand-over happens in the first iteration
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinAlgWarning)
        theirs = SkLogisticRegression(solver="newton-cholesky", C=1e30).fit(X, y)
        with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
            limited = LogisticRegression(solver="newton-cholesky", C=1e30,
                                         max_iter=n_lbfgs - 1).fit(X, y)  # fmt: skip
    assert fallback.n_iter_[0] == theirs.n_iter_[0]
    assert limited.n_iter_[0] == n_lbfgs - 2  # L-BFGS gets the iterations left after the first


def _curvature(X, y, k, fit_intercept, l2, sample_weight):
    """fastsoftmax's objective and curvature on theta, as LogisticRegression builds them."""
    from fastsoftmax import _objective

    n, d = X.shape
    n_coef = k * d

    def fun(theta):
        coef = theta[:n_coef].reshape(k, d)
        intercept = theta[n_coef:] if fit_intercept else None
        if k == 1:
            loss, g, gb = _objective.logistic_loss_grad(
                X, coef[0], None if intercept is None else float(intercept[0]), y.astype(float),
                sample_weight, l2)  # fmt: skip
        else:
            loss, g, gb = _objective.softmax_loss_grad(X, coef, intercept, y, sample_weight, l2)
        return loss, np.concatenate([np.ravel(g), np.ravel(gb)] if fit_intercept else [np.ravel(g)])

    return fun, _newton.LogisticCurvature(X, sample_weight, k, fit_intercept, l2, np.float64)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_hessian_is_the_derivative_of_the_gradient(k, fit_intercept):
    rng = np.random.default_rng(2)
    n, d = 50, 4
    X = rng.standard_normal((n, d))
    y = rng.integers(0, max(k, 2), size=n).astype(np.intp)
    sample_weight = rng.uniform(0.5, 2.0, size=n)
    fun, curvature = _curvature(X, y, k, fit_intercept, 0.07, sample_weight)
    theta = rng.standard_normal(curvature.n_params) * 0.5
    hessian = curvature.update(theta).hessian()
    h = 1e-6
    numeric = np.column_stack([
        (fun(theta + h * e)[1] - fun(theta - h * e)[1]) / (2 * h)
        for e in np.eye(curvature.n_params)
    ])  # fmt: skip
    np.testing.assert_allclose(hessian, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(hessian, hessian.T)
    v = rng.standard_normal(curvature.n_params)
    np.testing.assert_allclose(curvature.hessp(v), hessian @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver, step", [("newton-cholesky", "Newton iter="),
                                          ("newton-cg", "Newton-CG iter = ")])  # fmt: skip
def test_verbose_prints_each_newton_iteration(iris, capsys, solver, step):
    X, y = iris
    clf = LogisticRegression(solver=solver, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith(step) for line in lines) >= clf.n_iter_[0]
    assert lines[-1].startswith(f"{solver}: {clf.n_iter_[0]} iterations, loss ")


def test_failed_line_search_hands_over_to_lbfgs():
    X, y = load_iris(return_X_y=True)
    fun, curvature = _curvature(X, (y == 2).astype(np.intp), 1, True, 0.01, None)
    theta0 = np.zeros(curvature.n_params)

    def no_descent(theta):  # a loss that rises away from theta0 whatever the gradient says
        loss, grad = fun(theta)
        return loss + 1e9 * float(np.sum((theta - theta0) ** 2)), grad

    with pytest.warns(ConvergenceWarning, match="Line search of Newton solver .* at iteration #1 "
                      "did not converge after 21 line search refinement iterations"):  # fmt: skip
        result = _newton.minimize_newton_cholesky(no_descent, curvature, theta0, tol=1e-4,
                                                  max_iter=5, dtype=np.float64)  # fmt: skip
    assert result.method == "lbfgs"
