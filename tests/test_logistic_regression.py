"""LogisticRegression agrees with scikit-learn's on real data (same objective, same solver)."""

import warnings

import numpy as np
import pytest

from fastsoftmax import LogisticRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402


def _sklearn(**params):
    # sklearn >= 1.8 deprecates `penalty`; C=inf is its way of saying "no penalty"
    if params.pop("penalty", "l2") is None:
        params["C"] = np.inf
    return SkLogisticRegression(**params)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y  # scaled to [0, 1]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _assert_same_model(ours, theirs, X, *, atol):
    """Same coefficients and probabilities to within ``atol`` (relative to the largest coef)."""
    assert ours.coef_.shape == theirs.coef_.shape
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    scale = max(1.0, float(np.abs(theirs.coef_).max()))
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=atol * scale, rtol=0)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=atol * scale, rtol=0)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=atol, rtol=0)
    np.testing.assert_allclose(
        ours.decision_function(X), theirs.decision_function(X), atol=10 * atol * scale, rtol=0
    )
    assert np.mean(ours.predict(X) == theirs.predict(X)) > 0.995


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("dataset, coef_shape", [("digits", (10, 64)), ("cancer", (1, 30))])
def test_matches_sklearn(request, dataset, coef_shape, C):
    """Multinomial (digits, 10 classes) and binary (breast cancer) problems."""
    X, y = request.getfixturevalue(dataset)
    params = dict(C=C, max_iter=1000)
    ours = LogisticRegression(**params).fit(X, y)
    theirs = _sklearn(**params).fit(X, y)
    assert ours.coef_.shape == coef_shape
    _assert_same_model(ours, theirs, X, atol=1e-5)


def test_default_settings_same_path(digits, cancer):
    """With the default tol both run the same L-BFGS iterations and stop together."""
    for X, y in (digits, cancer):
        ours = LogisticRegression().fit(X, y)
        theirs = _sklearn().fit(X, y)
        assert ours.n_iter_.dtype == theirs.n_iter_.dtype and ours.n_iter_.shape == (1,)
        assert abs(int(ours.n_iter_[0]) - int(theirs.n_iter_[0])) <= 2
        _assert_same_model(ours, theirs, X, atol=1e-4)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 5.0, 3: 0.2}])
def test_class_weight_matches_sklearn(digits, class_weight):
    X, y = digits
    params = dict(C=0.5, class_weight=class_weight, max_iter=1000)
    ours = LogisticRegression(**params).fit(X, y)
    theirs = _sklearn(**params).fit(X, y)
    _assert_same_model(ours, theirs, X, atol=1e-5)


def test_binary_class_weight_and_sample_weight_match_sklearn(cancer):
    X, y = cancer
    sw = np.random.default_rng(0).uniform(0.1, 3.0, size=y.shape[0])
    params = dict(C=0.3, class_weight="balanced", max_iter=1000)
    ours = LogisticRegression(**params).fit(X, y, sample_weight=sw)
    theirs = _sklearn(**params).fit(X, y, sample_weight=sw)
    _assert_same_model(ours, theirs, X, atol=1e-5)


def test_no_intercept_matches_sklearn(digits):
    X, y = digits
    params = dict(fit_intercept=False, max_iter=1000)
    ours = LogisticRegression(**params).fit(X, y)
    theirs = _sklearn(**params).fit(X, y)
    _assert_same_model(ours, theirs, X, atol=1e-5)
    np.testing.assert_array_equal(ours.intercept_, np.zeros(10))


def test_no_penalty_matches_sklearn(cancer):
    # a few features keep the unpenalised problem bounded (the full data is separable)
    X, y = cancer
    X = X[:, :3]
    params = dict(penalty=None, max_iter=1000)
    ours = LogisticRegression(**params).fit(X, y)
    theirs = _sklearn(**params).fit(X, y)
    _assert_same_model(ours, theirs, X, atol=1e-4)


def test_string_labels_match_sklearn(cancer):
    X, y = cancer
    labels = np.array(["benign", "malignant"])[1 - y]
    ours = LogisticRegression().fit(X, labels)
    theirs = _sklearn().fit(X, labels)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-4)


def test_float32_close_to_sklearn_float64(digits):
    """float32 training reaches the float64 optimum to within the tolerance (no warning)."""
    X, y = digits
    X32 = X.astype(np.float32)
    # at the default tol=1e-4 sklearn's own float32 and float64 fits differ by ~1e-2 in
    # probability on this problem (the penalty is weak), so compare at a tighter tol
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = LogisticRegression(max_iter=1000, tol=1e-6).fit(X32, y)
    theirs = _sklearn(max_iter=1000, tol=1e-6).fit(X, y)
    assert ours.coef_.dtype == np.float32
    np.testing.assert_allclose(ours.predict_proba(X32), theirs.predict_proba(X), atol=2e-3)
    assert np.mean(ours.predict(X32) == theirs.predict(X)) > 0.995


def test_warns_like_sklearn_when_stopping_early(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning) as ours_record:
        ours = LogisticRegression(max_iter=5).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        theirs = _sklearn(max_iter=5).fit(X, y)
    assert "failed to converge after 5 iteration(s)" in str(ours_record[0].message)
    np.testing.assert_array_equal(ours.n_iter_, theirs.n_iter_)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)


def test_warm_start_matches_sklearn(cancer):
    X, y = cancer
    ours = LogisticRegression(warm_start=True, max_iter=3)
    theirs = _sklearn(warm_start=True, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):  # each fit continues from the previous coefficients
            ours.fit(X, y)
            theirs.fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)
