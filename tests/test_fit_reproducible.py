"""SoftmaxRegression's shuffle is pinned: the random numbers a fit draws for a given
``random_state`` (issue 13's fit overheads must not change them silently)."""

import numpy as np
import pytest

from fastsoftmax import SoftmaxRegression


def problem(n=203, d=17, C=4, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, C, n)
    return X, y


def fit(X, y, **params):
    options = dict(optimizer="sgd", learning_rate=0.05, batch_size=16, max_epochs=1)
    return SoftmaxRegression(**{**options, **params}).fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_one_epoch_trains_on_default_rng_permutation_of_the_rows(dtype):
    # a fit with random_state=s trains its first epoch on the rows in the order of
    # np.random.default_rng(s).permutation(n): bit for bit the fit without shuffling of
    # the rows taken in that order
    X, y = problem()
    if dtype == np.uint8:
        X = np.clip(X * 40 + 128, 0, 255).astype(np.uint8)
    order = np.random.default_rng(7).permutation(X.shape[0])
    shuffled = fit(X, y, random_state=7)
    in_that_order = fit(X[order], y[order], shuffle=False)
    np.testing.assert_array_equal(shuffled.coef_, in_that_order.coef_)
    np.testing.assert_array_equal(shuffled.intercept_, in_that_order.intercept_)


def test_same_random_state_same_model_other_state_other_model():
    X, y = problem()
    first, second = fit(X, y, random_state=3, max_epochs=3), fit(X, y, random_state=3, max_epochs=3)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    np.testing.assert_array_equal(first.intercept_, second.intercept_)
    other = fit(X, y, random_state=4, max_epochs=3)
    assert not np.array_equal(first.coef_, other.coef_)
