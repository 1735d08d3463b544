"""SoftmaxRegression's defaults converge: more epochs keep improving, and it stops on tol."""

import numpy as np
import pytest

from fastsoftmax import LogisticRegression, SoftmaxRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0)


def _full_loss(clf, X, y):
    """The mean cross-entropy on all of X, written out with numpy."""
    z = X @ clf.coef_.T + clf.intercept_
    z -= z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(X.shape[0]), y]))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_more_epochs_keep_improving(digits, optimizer):
    X_train, _, y_train, _ = digits
    losses = [
        _full_loss(
            SoftmaxRegression(optimizer, max_epochs=epochs, tol=None, random_state=0).fit(
                X_train, y_train
            ),
            X_train,
            y_train,
        )
        for epochs in (5, 20, 80)
    ]
    # a halving schedule gains < 1% after epoch 5; this one keeps going
    assert losses[1] < 0.8 * losses[0]
    assert losses[2] < 0.8 * losses[1]


def test_stops_on_tol(digits):
    X_train, _, y_train, _ = digits
    clf = SoftmaxRegression(random_state=0).fit(X_train, y_train)
    assert 10 < clf.n_iter_ < clf.max_epochs
    assert len(clf.history_["train_loss"]) == clf.n_iter_
    # each of the last n_iter_no_change epochs failed to beat the best before it by tol
    loss = np.array(clf.history_["train_loss"])
    for i in range(len(loss) - clf.n_iter_no_change, len(loss)):
        assert loss[i] > loss[:i].min() - clf.tol
    assert SoftmaxRegression(tol=None, random_state=0).fit(X_train, y_train).n_iter_ == 100


def test_validation_data_alone_does_not_stop_on_the_validation_loss(digits):
    X_train, X_test, y_train, y_test = digits
    params = dict(max_epochs=40, tol=0.05, n_iter_no_change=3, random_state=0)
    a = SoftmaxRegression(**params).fit(X_train, y_train)
    b = SoftmaxRegression(**params).fit(X_train, y_train, validation_data=(X_test, y_test))
    assert a.n_iter_ == b.n_iter_  # both watch the training loss
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_defaults_reach_logistic_regression_accuracy_on_digits(digits, optimizer, seed):
    X_train, X_test, y_train, y_test = digits
    reference = LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    clf = SoftmaxRegression(optimizer, random_state=seed).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= reference - 0.005


@pytest.mark.mnist
def test_defaults_reach_logistic_regression_accuracy_on_mnist():
    import os
    import warnings

    from fastsoftmax.datasets import load_mnist

    if not os.environ.get("FASTSOFTMAX_DATA"):
        pytest.skip("FASTSOFTMAX_DATA is not set (point it at the MNIST IDX files)")
    try:
        X_train, y_train, X_test, y_test = load_mnist(
            dtype="float32", download=False, return_X_y=True
        )
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"MNIST not available: {exc}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 100 L-BFGS iterations stop before convergence
        reference = LogisticRegression().fit(X_train, y_train).score(X_test, y_test)
    for optimizer in ("sgd", "adam"):
        clf = SoftmaxRegression(optimizer, random_state=0).fit(X_train, y_train)
        assert clf.n_iter_ < clf.max_epochs  # stopped on tol
        assert clf.score(X_test, y_test) >= reference - 0.005, optimizer
