"""SoftmaxRegression's ``l1_ratio``: L1 and elastic-net penalties in the epoch kernels."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

import fastsoftmax
from fastsoftmax import SoftmaxRegression
from fastsoftmax.learners import LEARNER_TABLE


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def objective(clf, X, y, strength, l1_ratio):
    """The mean cross-entropy plus the elastic-net penalty, in float64."""
    z = X.astype(np.float64) @ clf.coef_.T.astype(np.float64) + clf.intercept_
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    data = -log_p[np.arange(len(y)), np.searchsorted(clf.classes_, y)].mean()
    w = clf.coef_.astype(np.float64)
    return data + strength * (l1_ratio * np.abs(w).sum() + 0.5 * (1 - l1_ratio) * (w * w).sum())


@pytest.mark.parametrize("kind", [row.kind for row in LEARNER_TABLE])
def test_l1_gives_exact_zeros_and_the_objective_goes_down(digits, kind):
    X, y = digits
    params = dict(l2=0.005, l1_ratio=1.0, random_state=0, tol=None)
    if kind == "adadelta":
        params["learning_rate"] = 1.0
    short = SoftmaxRegression(kind, max_epochs=1, **params).fit(X, y)
    long = SoftmaxRegression(kind, max_epochs=6, **params).fit(X, y)
    assert (long.coef_ == 0).mean() > 0.1  # exact zeros, not small values
    assert objective(long, X, y, 0.005, 1.0) < objective(short, X, y, 0.005, 1.0)
    # the training loss the estimator records includes the L1 term
    loss = long.history_["train_loss"]
    assert loss[-1] < loss[0]
    assert long.score(X, y) > 0.85


def test_l1_ratio_zero_is_the_l2_model_and_more_l1_is_sparser(digits):
    X, y = digits
    base = dict(l2=0.005, max_epochs=4, random_state=0, tol=None)
    l2_only = SoftmaxRegression(**base).fit(X, y)
    same = SoftmaxRegression(l1_ratio=0.0, **base).fit(X, y)
    np.testing.assert_array_equal(l2_only.coef_, same.coef_)
    assert not (l2_only.coef_ == 0).any() or (l2_only.coef_ == 0).mean() < 0.1
    zeros = [(SoftmaxRegression(l1_ratio=r, **base).fit(X, y).coef_ == 0).mean()
             for r in (0.0, 0.5, 1.0)]  # fmt: skip
    assert zeros[0] < zeros[1] < zeros[2]


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_compiled_backends_agree_with_the_python_loop(digits, backend):
    # a float64 fit of each compiled epoch kernel against the numpy backend (the Trainer's loop)
    if backend not in fastsoftmax.backends():
        pytest.skip(f"no {backend} backend here")
    X, y = digits
    X = X[:400].astype(np.float64)
    y = y[:400]
    params = dict(optimizer="adam", l2=0.01, l1_ratio=0.7, max_epochs=3, random_state=1, tol=None)
    with fastsoftmax.use_backend("numpy"):
        reference = SoftmaxRegression(**params).fit(X, y)
    with fastsoftmax.use_backend(backend):
        compiled = SoftmaxRegression(**params).fit(X, y)
    np.testing.assert_allclose(compiled.coef_, reference.coef_, rtol=1e-7, atol=1e-10)
    assert np.array_equal(compiled.coef_ == 0, reference.coef_ == 0)
    assert (compiled.coef_ == 0).any()


def test_l1_ratio_params(digits):
    clf = SoftmaxRegression(l1_ratio=0.25)
    assert clf.get_params()["l1_ratio"] == 0.25
    assert SoftmaxRegression().get_params()["l1_ratio"] == 0.0
    assert clone(clf).set_params(l1_ratio=1.0).l1_ratio == 1.0
    X, y = digits
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="l1_ratio"):
            SoftmaxRegression(l1_ratio=bad, max_epochs=1).fit(X[:50], y[:50])
    with pytest.raises(TypeError, match="l1_ratio"):
        SoftmaxRegression(l1_ratio="l1", max_epochs=1).fit(X[:50], y[:50])


def test_partial_fit_keeps_the_l1_term(digits):
    X, y = digits
    clf = SoftmaxRegression(l2=0.01, l1_ratio=1.0, random_state=0)
    for _ in range(3):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert (clf.coef_ == 0).mean() > 0.1
