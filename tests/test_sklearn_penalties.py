"""L1 and elastic-net LogisticRegression reaches scikit-learn's saga optimum."""

import warnings

import numpy as np
import pytest

from fastsoftmax import LogisticRegression

sklearn = pytest.importorskip("sklearn")
from scipy.special import log_softmax  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402


def objective(clf, X, y, C, l1_ratio, sample_weight=None):
    """scikit-learn's objective in float64, written out independently of fastsoftmax."""
    X = np.asarray(X, dtype=np.float64)
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    y_idx = np.searchsorted(clf.classes_, y)
    sw = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    z = X @ coef.T + intercept
    if coef.shape[0] == 1:  # binary: the logit of classes_[1]
        z = np.column_stack([np.zeros(X.shape[0]), z[:, 0]])
    loss = -log_softmax(z, axis=1)[np.arange(X.shape[0]), y_idx]
    penalty = l1_ratio * np.abs(coef).sum() + 0.5 * (1 - l1_ratio) * (coef**2).sum()
    return float(np.sum(sw * loss) / sw.sum() + penalty / (C * sw.sum()))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, centers=3, n_features=6, cluster_std=3.0, random_state=0)
    return X, y


def _saga(**params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SkLogisticRegression(solver="saga", tol=1e-8, max_iter=20000, **params)


def _assert_same_optimum(ours, theirs, X, y, C, l1_ratio, sample_weight=None):
    f_ours = objective(ours, X, y, C, l1_ratio, sample_weight)
    f_theirs = objective(theirs, X, y, C, l1_ratio, sample_weight)
    assert f_ours == pytest.approx(f_theirs, rel=1e-6, abs=1e-8)
    assert f_ours <= f_theirs + 1e-7  # ours is at least as good
    np.testing.assert_array_equal(ours.coef_ == 0, theirs.coef_ == 0)  # same sparsity
    assert np.count_nonzero(ours.coef_ == 0) > 0  # the test means something


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
@pytest.mark.parametrize("C", [0.05, 0.5])
def test_multinomial_digits_matches_saga(digits, C, l1_ratio):
    X, y = digits
    theirs = _saga(C=C, l1_ratio=l1_ratio).fit(X, y)
    ours = LogisticRegression(solver="saga", C=C, l1_ratio=l1_ratio, tol=1e-7, max_iter=5000)
    ours.fit(X, y)
    _assert_same_optimum(ours, theirs, X, y, C, l1_ratio)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=0.003)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.3])
def test_multinomial_blobs_matches_saga(blobs, l1_ratio):
    X, y = blobs
    theirs = _saga(C=0.02, l1_ratio=l1_ratio).fit(X, y)
    ours = LogisticRegression(solver="saga", C=0.02, l1_ratio=l1_ratio, tol=1e-8, max_iter=5000)
    _assert_same_optimum(ours.fit(X, y), theirs, X, y, 0.02, l1_ratio)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_binary_matches_saga(digits, l1_ratio):
    X, y = digits
    keep = y < 2
    X, y = X[keep], y[keep]
    C = 0.05
    theirs = _saga(C=C, l1_ratio=l1_ratio).fit(X, y)
    ours = LogisticRegression(solver="saga", C=C, l1_ratio=l1_ratio, tol=1e-8, max_iter=5000)
    ours.fit(X, y)
    assert ours.coef_.shape == (1, 64)
    _assert_same_optimum(ours, theirs, X, y, C, l1_ratio)


def test_sample_weight_matches_saga(blobs):
    X, y = blobs
    sw = np.random.default_rng(1).uniform(0.2, 3.0, X.shape[0])
    theirs = _saga(C=0.02, l1_ratio=1.0).fit(X, y, sample_weight=sw)
    ours = LogisticRegression(solver="saga", C=0.02, l1_ratio=1.0, tol=1e-8, max_iter=5000)
    _assert_same_optimum(ours.fit(X, y, sample_weight=sw), theirs, X, y, 0.02, 1.0, sw)


def test_no_intercept_matches_saga(blobs):
    X, y = blobs
    theirs = _saga(C=0.02, l1_ratio=1.0, fit_intercept=False).fit(X, y)
    ours = LogisticRegression(
        solver="saga", C=0.02, l1_ratio=1.0, fit_intercept=False, tol=1e-8, max_iter=5000
    )
    _assert_same_optimum(ours.fit(X, y), theirs, X, y, 0.02, 1.0)
    np.testing.assert_array_equal(ours.intercept_, np.zeros(3))


def test_stronger_l1_is_sparser(digits):
    X, y = digits
    zeros = [
        np.count_nonzero(
            LogisticRegression(solver="saga", l1_ratio=1.0, C=C, max_iter=1000).fit(X, y).coef_
            == 0
        )
        for C in (1.0, 0.1, 0.01)
    ]
    assert zeros[0] < zeros[1] < zeros[2]


def test_zero_l1_ratio_with_saga_is_the_l2_fit(blobs):
    X, y = blobs
    a = LogisticRegression(solver="saga", l1_ratio=0.0).fit(X, y)
    b = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_float32_stays_float32_with_l1(digits):
    X, y = digits
    X32 = X.astype(np.float32)
    ours = LogisticRegression(solver="saga", l1_ratio=1.0, C=0.1, max_iter=2000).fit(X32, y)
    ref = LogisticRegression(solver="saga", l1_ratio=1.0, C=0.1, max_iter=2000).fit(X, y)
    assert ours.coef_.dtype == np.float32 and ours.intercept_.dtype == np.float32
    assert objective(ours, X, y, 0.1, 1.0) == pytest.approx(objective(ref, X, y, 0.1, 1.0), rel=1e-4)


def test_warm_start_with_l1(blobs):
    X, y = blobs
    clf = LogisticRegression(solver="saga", l1_ratio=1.0, C=0.02, warm_start=True, tol=1e-8)
    clf.fit(X, y)
    first = clf.n_iter_[0]
    clf.fit(X, y)
    assert clf.n_iter_[0] < first  # starts at the optimum
