"""The L-BFGS for wide problems (fastsoftmax._lbfgs) against scipy's L-BFGS-B."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize

from fastsoftmax import _lbfgs, _solvers
from fastsoftmax._lbfgs import minimize_lbfgs

EPS = np.finfo(np.float64).eps


def _scipy(fun, x0, tol, max_iter, **options):
    # scikit-learn's settings (fastsoftmax._solvers._lbfgs)
    opts = {"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * EPS}
    opts.update(options)
    return minimize(fun, x0, method="L-BFGS-B", jac=True, options=opts)


def rosenbrock(x):
    r = x[1:] - x[:-1] ** 2
    f = float(np.sum(100 * r**2 + (1 - x[:-1]) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * r - 2 * (1 - x[:-1])
    g[1:] += 200 * r
    return f, g


def logistic_problem(n=400, d=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + rng.standard_normal(n) > 0).astype(float)

    def fun(w):
        z = X @ w
        f = float(np.sum(np.logaddexp(0, z) - y * z)) / n + 0.5e-3 * float(w @ w)
        return f, X.T @ (0.5 * (1 + np.tanh(0.5 * z)) - y) / n + 1e-3 * w

    return fun, np.zeros(d)


@pytest.mark.parametrize("n", [2, 5, 10])
def test_rosenbrock_same_path_as_scipy(n):
    x0 = np.full(n, -1.2)
    ref = _scipy(rosenbrock, x0, 1e-6, 500)
    x, f, n_iter, status, message = minimize_lbfgs(rosenbrock, x0, tol=1e-6, max_iter=500)
    assert (n_iter, status) == (ref.nit, ref.status) == (n_iter, 0)
    assert message == ref.message
    np.testing.assert_allclose(x, ref.x, atol=1e-8)
    assert f == pytest.approx(ref.fun, abs=1e-12)


@pytest.mark.parametrize("tol", [1e-4, 1e-8])
def test_logistic_same_iterates_as_scipy(tol):
    fun, x0 = logistic_problem()
    ref = _scipy(fun, x0, tol, 100)
    x, f, n_iter, status, message = minimize_lbfgs(fun, x0, tol=tol, max_iter=100)
    assert (n_iter, status, message) == (ref.nit, ref.status, ref.message)
    np.testing.assert_allclose(x, ref.x, rtol=1e-9, atol=1e-12)


def test_relative_reduction_stop_as_scipy():
    # a loose ftol stops on the relative reduction of f, with scipy's message
    fun = lambda x: (float(np.sum(x**4)), 4 * x**3)  # noqa: E731
    ref = _scipy(fun, np.ones(3), 1e-12, 100, ftol=1e-3)
    x, f, n_iter, status, message = minimize_lbfgs(fun, np.ones(3), tol=1e-12, max_iter=100,
                                                   ftol=1e-3)  # fmt: skip
    assert (n_iter, status, message) == (ref.nit, 0, ref.message)
    assert "REDUCTION" in message
    np.testing.assert_allclose(x, ref.x, rtol=1e-10)


@pytest.mark.parametrize("max_iter", [0, 1, 2, 3])
def test_max_iter_as_scipy(max_iter):
    # max_iter=0 takes one step (scikit-learn's lbfgs does); the limit wins over convergence
    x0 = np.full(5, -1.2)
    ref = _scipy(rosenbrock, x0, 1e-6, max_iter)
    x, f, n_iter, status, message = minimize_lbfgs(rosenbrock, x0, tol=1e-6, max_iter=max_iter)
    assert (n_iter, status, message) == (ref.nit, ref.status, ref.message) == (n_iter, 1, message)
    np.testing.assert_allclose(x, ref.x, atol=1e-12)


def test_converged_at_start():
    x, f, n_iter, status, message = minimize_lbfgs(lambda x: (0.0, np.zeros_like(x)),
                                                   np.ones(4), tol=1e-4, max_iter=10)  # fmt: skip
    assert (n_iter, status) == (0, 0)
    assert "PROJECTED GRADIENT" in message
    np.testing.assert_array_equal(x, np.ones(4))


def test_failed_line_search_as_scipy():
    # f jumps up away from x0, so that no step decreases it: status 2, x unchanged
    x0 = np.ones(3)

    def fun(x):
        return float(x @ x) + (0.0 if np.array_equal(x, x0) else 10.0), 2 * x

    ref = _scipy(fun, x0, 1e-8, 20)
    x, f, n_iter, status, message = minimize_lbfgs(fun, x0, tol=1e-8, max_iter=20)
    assert status == ref.status == 2
    assert n_iter == ref.nit == 0
    assert message.startswith("ABNORMAL") and ref.message.startswith("ABNORMAL")
    np.testing.assert_array_equal(x, x0)


def test_non_finite_trial_point_shortens_the_step():
    # f is NaN outside the unit ball: the search halves the step instead of taking NaN
    def fun(x):
        return (float(np.sum((x - 3) ** 2)) if x @ x <= 1 else np.nan), 2 * (x - 3)

    x, f, n_iter, status, message = minimize_lbfgs(fun, np.zeros(2), tol=1e-8, max_iter=20)
    assert np.isfinite(f) and x @ x <= 1
    assert f < fun(np.zeros(2))[0]


def test_report_once_per_iteration():
    fun, x0 = logistic_problem()
    seen = []
    _, f, n_iter, _, _ = minimize_lbfgs(fun, x0, tol=1e-6, max_iter=100, report=seen.append)
    assert len(seen) == n_iter > 3
    assert seen[-1] == f
    assert all(b <= a for a, b in zip(seen, seen[1:]))


def test_x0_not_modified():
    fun, _ = logistic_problem()
    x0 = np.full(30, 0.1)
    minimize_lbfgs(fun, x0, tol=1e-6, max_iter=5)
    np.testing.assert_array_equal(x0, np.full(30, 0.1))


def test_memory_is_history_plus_a_few_vectors():
    # besides the float64 history (2 maxcor vectors) and the objective's buffers (here 1 and
    # the gradients it returns), the solver keeps 5 vectors of n_params: no temporaries
    n, maxcor = 200_000, 5
    h = np.linspace(1.0, 50.0, n)
    buf = np.empty(n)

    def fun(x):
        np.subtract(x, 1.0, out=buf)
        grad = h * buf
        return 0.5 * float(np.dot(buf, grad)), grad

    x0 = np.zeros(n)
    tracemalloc.start()
    try:
        minimize_lbfgs(fun, x0, tol=1e-10, max_iter=30, maxcor=maxcor, ftol=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    vectors = peak / (8 * n)
    assert vectors < 2 * maxcor + 8, vectors


def test_minimize_smooth_uses_it_for_wide_problems(monkeypatch):
    fun, x0 = logistic_problem()
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return minimize_lbfgs(*args, **kwargs)

    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", spy)
    narrow = _solvers.minimize_smooth(fun, x0, tol=1e-6, max_iter=100)
    assert not calls
    monkeypatch.setattr(_lbfgs, "WIDE_PROBLEM_PARAMS", x0.shape[0])
    wide = _solvers.minimize_smooth(fun, x0, tol=1e-6, max_iter=100)
    assert calls
    assert (wide.n_iter, wide.status, wide.message) == (narrow.n_iter, 0, narrow.message)
    np.testing.assert_allclose(wide.x, narrow.x, rtol=1e-9, atol=1e-12)
    assert wide.fun == pytest.approx(narrow.fun, rel=1e-12)


@pytest.fixture
def wide_from_1000(monkeypatch):
    # small problems of a text-like shape through the wide solver, to keep the tests fast
    monkeypatch.setattr(_lbfgs, "WIDE_PROBLEM_PARAMS", 1000)


def _wide_text_problem(n=300, d=3000, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=20 / d, format="csr", random_state=seed, dtype=np.float64)
    X.data = rng.random(X.nnz)
    hot = rng.integers(0, 200, size=(n, 3))  # informative frequent features
    X = (X + sp.csr_matrix((np.ones(3 * n), (np.repeat(np.arange(n), 3), hot.ravel())),
                           shape=(n, d))).tocsr()  # fmt: skip
    y = hot[:, 0] % k
    return X, y


def test_logistic_regression_wide_matches_scipy_path(monkeypatch):
    from fastsoftmax.estimators import LogisticRegression

    X, y = _wide_text_problem(n=200, d=33_000)
    assert 4 * (X.shape[1] + 1) >= _lbfgs.WIDE_PROBLEM_PARAMS  # the default rule takes it
    monkeypatch.setattr(_solvers, "PRECONDITION_SPARSE", False)  # scipy's steps
    wide = LogisticRegression(C=1.0, tol=1e-4, max_iter=200).fit(X, y)
    monkeypatch.setattr(_lbfgs, "WIDE_PROBLEM_PARAMS", 1 << 40)
    narrow = LogisticRegression(C=1.0, tol=1e-4, max_iter=200).fit(X, y)
    assert narrow.n_iter_[0] < 200
    assert abs(int(wide.n_iter_[0]) - int(narrow.n_iter_[0])) <= 2
    np.testing.assert_allclose(wide.coef_, narrow.coef_, atol=2e-4)
    np.testing.assert_allclose(wide.intercept_, narrow.intercept_, atol=2e-4)


def test_logistic_regression_wide_convergence_warning_and_verbose(capsys, wide_from_1000):
    from fastsoftmax.estimators import LogisticRegression
    from fastsoftmax.estimators._compat import ConvergenceWarning

    X, y = _wide_text_problem()
    with pytest.warns(ConvergenceWarning, match="after 3 iteration"):
        est = LogisticRegression(max_iter=3, verbose=2).fit(X, y)
    assert est.n_iter_[0] == 3
    out = capsys.readouterr().out
    assert out.count("L-BFGS iteration") == 3
    assert "TOTAL NO. OF ITERATIONS" in out
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        LogisticRegression(C=1.0, max_iter=300).fit(X, y)


@pytest.mark.parametrize("k", [2, 5])
def test_logistic_regression_wide_matches_sklearn(k, wide_from_1000, monkeypatch):
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    from fastsoftmax.estimators import LogisticRegression

    # scipy's steps: both stop at the same point of the tolerance region
    monkeypatch.setattr(_solvers, "PRECONDITION_SPARSE", False)
    X, y = _wide_text_problem(k=k)
    ours = LogisticRegression(C=10.0, tol=1e-6, max_iter=500).fit(X, y)
    ref = sklearn_linear.LogisticRegression(C=10.0, tol=1e-6, max_iter=500).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=5e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=5e-4)


@pytest.mark.parametrize("k", [2, 5])
def test_preconditioned_wide_reaches_sklearn_optimum(k, wide_from_1000):
    # the preconditioned path (the default on CSR) takes other steps to the same optimum:
    # at a tight tolerance both solvers' coefficients agree
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    from fastsoftmax.estimators import LogisticRegression

    X, y = _wide_text_problem(k=k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converged
        ours = LogisticRegression(C=10.0, tol=1e-9, max_iter=3000).fit(X, y)
        ref = sklearn_linear.LogisticRegression(C=10.0, tol=1e-9, max_iter=3000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-5)


def test_preconditioner_scales_by_feature_curvature():
    # 1 / sqrt(a mean_i s_i x_ij^2 + l2) per feature, tiled over the classes; the intercepts
    # 1 / sqrt(a), a = p (1 - p) with p = 1 / n_classes
    X = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]))
    sw = np.array([1.0, 3.0])
    scale = _solvers.diagonal_preconditioner(X, sw, 0.5, 4, True)
    a = 0.25 * 0.75
    feature = 1 / np.sqrt(a * np.array([4.0, 0.0, 28.0]) / 4 + 0.5)
    np.testing.assert_allclose(scale, np.concatenate([np.tile(feature, 4), np.full(4, a**-0.5)]))
    assert _solvers.diagonal_preconditioner(X.toarray(), sw, 0.5, 4, True) is None


def test_scaled_lbfgs_same_minimum_and_stopping_rule():
    # the scale changes the steps, not the minimum, and the gradient test is on x's gradient
    h = np.geomspace(1.0, 1e4, 50)

    def fun(x):
        r = x - 1.0
        return 0.5 * float(r @ (h * r)), h * r

    plain = minimize_lbfgs(fun, np.zeros(50), tol=1e-8, max_iter=1000)
    scaled = minimize_lbfgs(fun, np.zeros(50), tol=1e-8, max_iter=1000, scale=1 / np.sqrt(h))
    assert plain[3] == scaled[3] == 0
    assert scaled[2] < plain[2] // 3  # the exact diagonal: a few steps
    np.testing.assert_allclose(scaled[0], 1.0, atol=1e-8 / h.min())
    assert np.max(np.abs(fun(scaled[0])[1])) <= 1e-8
    # a small uniform scale makes the gradient in v = x / scale small: the test is on x's
    tiny = minimize_lbfgs(fun, np.zeros(50), tol=1e-6, max_iter=1000, ftol=0,
                          scale=np.full(50, 1e-4))
    assert tiny[3] == 0 and "PROJECTED GRADIENT" in tiny[4]
    assert np.max(np.abs(fun(tiny[0])[1])) <= 1e-6
    with pytest.raises(ValueError, match="scale"):
        minimize_lbfgs(fun, np.zeros(50), tol=1e-8, max_iter=10, scale=np.ones(3))


@pytest.mark.parametrize("scaled", [False, True])
def test_numpy_passes_match_compiled(scaled, monkeypatch):
    # the pure-Python install's passes take the same steps as the compiled ones
    pytest.importorskip("fastsoftmax._lbfgs_kernels")
    fun, x0 = logistic_problem()
    scale = np.linspace(0.5, 2.0, x0.shape[0]) if scaled else None
    compiled = minimize_lbfgs(fun, x0, tol=1e-8, max_iter=100, scale=scale)
    monkeypatch.setattr(_lbfgs, "_compiled", lambda: None)
    numpy = minimize_lbfgs(fun, x0, tol=1e-8, max_iter=100, scale=scale)
    assert compiled[2:] == numpy[2:]
    np.testing.assert_allclose(numpy[0], compiled[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_flat_csr_objective_matches_softmax_loss_grad(compiled, fit_intercept, monkeypatch):
    # the fused passes of the estimators' CSR objective: the same loss and gradient as the
    # objective layer on coef (C, d), the L2 term in float64 on theta
    from fastsoftmax import _objective

    if not compiled:
        monkeypatch.setattr(_objective, "_compiled_sparse", lambda: None)
    X, y = _wide_text_problem(n=120, d=500, k=5)
    X = X.astype(np.float32)
    C, d = 5, X.shape[1]
    rng = np.random.default_rng(1)
    theta = rng.standard_normal(C * d + (C if fit_intercept else 0)) * 0.3
    sw = rng.uniform(0.5, 2.0, X.shape[0]).astype(np.float32)
    l2 = 0.05
    buffers = (np.full((d, C), np.nan, np.float32), np.full((d, C), np.nan, np.float32))
    loss, grad = _objective.softmax_loss_grad_flat_csr(X, theta, C, fit_intercept, y, sw, l2,
                                                        *buffers)  # fmt: skip
    coef = theta[: C * d].reshape(C, d)
    intercept = theta[C * d :].astype(np.float32) if fit_intercept else None
    ref_loss, ref_coef_grad, ref_intercept_grad = _objective.softmax_loss_grad(
        X, coef.astype(np.float32), intercept, y, sw, l2
    )
    assert grad.dtype == np.float64 and grad.shape == theta.shape
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(grad[: C * d], ref_coef_grad.reshape(-1), rtol=1e-4, atol=1e-6)
    if fit_intercept:
        np.testing.assert_allclose(grad[C * d :], ref_intercept_grad, rtol=1e-4, atol=1e-6)


def test_minimize_smooth_preconditioned_pairs(monkeypatch):
    # with a preconditioner the wide path keeps PRECONDITIONED_MAXCOR pairs, else scipy's 10
    fun, x0 = logistic_problem()
    seen = []

    def spy(*args, **kwargs):
        seen.append((kwargs["maxcor"], kwargs["scale"] is not None))
        return minimize_lbfgs(*args, **kwargs)

    monkeypatch.setattr(_lbfgs, "minimize_lbfgs", spy)
    monkeypatch.setattr(_lbfgs, "WIDE_PROBLEM_PARAMS", x0.shape[0])
    plain = _solvers.minimize_smooth(fun, x0, tol=1e-8, max_iter=200)
    scaled = _solvers.minimize_smooth(fun, x0, tol=1e-8, max_iter=200, scale=np.full(30, 2.0))
    assert seen == [(10, False), (_solvers.PRECONDITIONED_MAXCOR, True)]
    assert _solvers.PRECONDITIONED_MAXCOR < 10
    assert plain.status == scaled.status == 0
    np.testing.assert_allclose(scaled.x, plain.x, atol=1e-6)
