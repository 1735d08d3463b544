"""Accuracy on the real MNIST data (issue 3's requirements); skipped when the files are absent.

The data is read through the project's loader from ``$FASTSOFTMAX_DATA``.
"""

import os
import warnings

import numpy as np
import pytest

from fastsoftmax import LogisticRegression, SoftmaxRegression

pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def mnist():
    from fastsoftmax.datasets import load_mnist

    if not os.environ.get("FASTSOFTMAX_DATA"):
        pytest.skip("FASTSOFTMAX_DATA is not set (point it at the MNIST IDX files)")
    try:
        # pixels / 255 as float32; no download in tests
        return load_mnist(dtype="float32", download=False, return_X_y=True)
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"MNIST not available: {exc}")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_softmax_regression_defaults_reach_92_percent_in_5_epochs(mnist, optimizer):
    X_train, y_train, X_test, y_test = mnist
    clf = SoftmaxRegression(optimizer, max_epochs=5, random_state=0).fit(X_train, y_train)
    assert clf.n_iter_ == 5
    assert clf.coef_.dtype == np.float32
    accuracy = clf.score(X_test, y_test)
    assert accuracy >= 0.920, f"{optimizer}: test accuracy {accuracy:.4f}"


def test_logistic_regression_reaches_92_5_percent(mnist):
    X_train, y_train, X_test, y_test = mnist
    with warnings.catch_warnings():
        # 200 L-BFGS iterations stop before convergence on MNIST, as with scikit-learn
        warnings.simplefilter("ignore", UserWarning)
        clf = LogisticRegression(max_iter=200).fit(X_train, y_train)
    assert clf.coef_.shape == (10, 784) and clf.coef_.dtype == np.float32
    accuracy = clf.score(X_test, y_test)
    assert accuracy >= 0.925, f"test accuracy {accuracy:.4f}"
