"""LogisticRegression has scikit-learn 1.9's signature and reads its parameters the same way."""

import inspect
import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import LogisticRegression
from fastsoftmax.estimators import _logistic

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.standard_normal(120) > 0).astype(int)
    y[X[:, 2] > 1.0] = 2
    return X, y


def _parameters(cls):
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self"
    ]


def test_signature_is_sklearns():
    assert _parameters(LogisticRegression) == _parameters(SkLogisticRegression)


@pytest.mark.parametrize(
    "params",
    [{}, {"solver": "saga", "l1_ratio": 1.0, "C": 0.5}, {"C": np.inf}, {"solver": "newton-cholesky"}],
)
def test_sklearn_params_construct_ours(params, data):
    X, y = data
    theirs = SkLogisticRegression(**params)
    ours = LogisticRegression(**theirs.get_params())
    assert ours.get_params() == theirs.get_params()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of saga's default max_iter
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.coef_.shape == theirs.coef_.shape
    assert np.mean(ours.predict(X) == theirs.predict(X)) > 0.95


def _outcome(cls, params, X, y):
    """The warnings (category, text) and the error (type, text) of a fit, for comparison."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cls(**params).fit(X, y)
        except ValueError as exc:
            error = str(exc)
    seen = sorted(
        {
            (w.category.__name__, str(w.message))
            for w in caught
            if not issubclass(w.category, sklearn.exceptions.ConvergenceWarning)
        }
    )
    return seen, error


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"penalty": "l2"},
        {"penalty": "l2", "l1_ratio": 0.5},
        {"penalty": "l1", "solver": "saga"},
        {"penalty": "l1"},
        {"penalty": "elasticnet", "solver": "saga", "l1_ratio": 0.3},
        {"penalty": "elasticnet", "solver": "saga", "l1_ratio": None},
        {"penalty": None},
        {"penalty": None, "C": 3.0},
        {"l1_ratio": None},
        {"l1_ratio": 1.0},
        {"l1_ratio": 0.5},
        {"l1_ratio": 0.5, "solver": "saga", "C": np.inf},
        {"l1_ratio": 1.0, "solver": "saga"},
        {"dual": True},
        {"l1_ratio": 1.0, "dual": True},
        {"solver": "saga", "dual": True},
    ],
)
def test_penalty_deprecation_path_is_sklearns(params, data):
    """The same warnings and the same errors as scikit-learn 1.9, parameter for parameter."""
    X, y = data
    params = dict(params, max_iter=5)
    assert _outcome(LogisticRegression, params, X, y) == _outcome(
        SkLogisticRegression, params, X, y
    )


def test_dual_is_refused_with_sklearns_error(data):
    X, y = data
    with pytest.raises(ValueError, match="Solver lbfgs supports only dual=False, got dual=True"):
        LogisticRegression(dual=True).fit(X, y)


def test_intercept_scaling_is_accepted(data):
    X, y = data
    a = LogisticRegression(intercept_scaling=5.0).fit(X, y)
    b = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)  # liblinear's parameter: no effect here


@pytest.mark.parametrize("fails", [False, True])
def test_n_jobs_sets_the_kernel_threads_for_the_fit(fails, data, monkeypatch):
    X, y = data
    seen = []
    loss_grad = _logistic._objective.softmax_loss_grad

    def spy(*args, **kwargs):
        seen.append(fastsoftmax.get_num_threads())
        if fails:
            raise RuntimeError("stop")
        return loss_grad(*args, **kwargs)

    monkeypatch.setattr(_logistic._objective, "softmax_loss_grad", spy)
    before = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(2)
    try:
        clf = LogisticRegression(n_jobs=1)
        if fails:
            with pytest.raises(RuntimeError, match="stop"):
                clf.fit(X, y)
        else:
            clf.fit(X, y)
        assert set(seen) == {1}
        assert fastsoftmax.get_num_threads() == 2  # restored, also after an error
        seen.clear()
        LogisticRegression(n_jobs=None).fit(X, y) if not fails else None
        assert set(seen) <= {2}
    finally:
        fastsoftmax.set_num_threads(before)


def test_grid_search_over_l1_ratio(data):
    X, y = data
    grid = {"l1_ratio": [0.0, 0.5, 1.0], "C": [0.1, 1.0]}
    search = GridSearchCV(LogisticRegression(solver="saga", max_iter=500), grid, cv=3)
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores.shape == (6,)
    assert search.best_params_["l1_ratio"] in grid["l1_ratio"]
    assert search.best_estimator_.l1_ratio == search.best_params_["l1_ratio"]


def test_coef_set_by_hand_may_be_a_strided_view(data):
    X, y = data
    clf = LogisticRegression().fit(X, y)
    expected = clf.decision_function(X)
    # as scikit-learn's tests do with coefs_paths_: the intercept is the last column
    path = np.column_stack([clf.coef_, clf.intercept_])
    clf.coef_, clf.intercept_ = path[:, :-1], path[:, -1]  # not C-contiguous
    np.testing.assert_allclose(clf.decision_function(X), expected, rtol=1e-12)


@pytest.mark.parametrize("solver", ["newton-cg", "newton-cholesky", "sag", "saga"])
def test_zero_max_iter_leaves_the_start(solver, data):
    X, y = data
    with pytest.warns(sklearn.exceptions.ConvergenceWarning):
        clf = LogisticRegression(solver=solver, max_iter=0).fit(X, y)
    assert clf.n_iter_[0] == 0
    np.testing.assert_array_equal(clf.coef_, 0.0)
