"""SoftmaxRegression.fit screens dense float X for NaN and infinity in its first epoch (issue 13).

A NaN or an infinity in a row makes every logit of the row, and so the
epoch's loss, NaN; the exact screen then runs and raises scikit-learn's
message, and the estimator is left as it was.  Finite X is read by the
epochs only, never by a separate screen.
"""

import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import SoftmaxRegression
from fastsoftmax.estimators import _softmax

BAD = [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")]
#: the first and the last value, a row inside a minibatch and one of the last, short minibatch
PLACES = [(0, 0), (119, 8), (61, 4), (117, 2)]
OPTIONS = [
    {"batch_size": 32},
    {"batch_size": 500},  # one minibatch larger than the data
    {"batch_size": 7, "early_stopping": True},  # the NaN may be in the validation rows
    {"optimizer": "adam"},
]


def _data(dtype):
    rng = np.random.default_rng(0)
    return rng.random((120, 9)).astype(dtype), rng.integers(0, 3, 120)


def _state(est):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items()}


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("place", PLACES, ids=str)
@pytest.mark.parametrize("bad, message", BAD, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_epoch_finds_every_nan_and_infinity(backend_name, dtype, bad, message, place,
                                                   options):  # fmt: skip
    X, y = _data(dtype)
    X[place] = bad
    est = SoftmaxRegression(max_epochs=3, random_state=0, **options)
    with fastsoftmax.use_backend(backend_name), warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warnings before the error
        with pytest.raises(ValueError, match=rf"^Input X contains {message}\.$"):
            est.fit(X, y)
    assert vars(est) == SoftmaxRegression(max_epochs=3, random_state=0, **options).__dict__


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_warm_start_is_left_unchanged(backend_name, bad):
    X, y = _data(np.float32)
    est = SoftmaxRegression(max_epochs=2, warm_start=True, random_state=0)
    with fastsoftmax.use_backend(backend_name):
        est.fit(X, y)
        before = _state(est)
        X[40, 3] = bad
        with pytest.raises(ValueError, match="^Input X contains"):
            est.fit(X, y)
    after = _state(est)
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, after[name])
        else:
            assert value == after[name], name


def test_zero_weight_rows_are_screened_before_the_epochs():
    # a row of weight 0 may never reach the loss: X is screened up front
    X, y = _data(np.float64)
    X[5, 1] = np.nan
    sw = np.ones(120)
    sw[5] = 0.0
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        SoftmaxRegression(max_epochs=2, random_state=0).fit(X, y, sample_weight=sw)


def test_finite_X_is_not_screened_separately(monkeypatch):
    X, y = _data(np.float32)
    screened = []
    monkeypatch.setattr(_softmax, "check_all_finite", lambda values, name="X": screened.append(values))
    SoftmaxRegression(max_epochs=2, random_state=0).fit(X, y)
    assert screened == []
    # a loss that diverges on finite X: the screen runs, then the learning-rate error
    with pytest.raises(ValueError, match="learning rate is too large"):
        SoftmaxRegression(max_epochs=2, learning_rate=1e30, random_state=0).fit(X * 1e30, y)
    assert len(screened) == 1


@pytest.mark.parametrize("scale", [1.0, 0.01])  # the curvature's bound suffices / its Gram matrices
def test_nan_reaches_the_screen_through_the_auto_rate(scale):
    X, y = _data(np.float64)
    X *= scale
    X[3, 3] = np.nan
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        SoftmaxRegression(max_epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 300])
def test_curvature_bound_is_below_the_curvature(batch_size):
    rng = np.random.default_rng(batch_size)
    for X in (rng.random((3000, 12)), rng.standard_normal((500, 40)) * 3):
        exact = _softmax._minibatch_curvature(X, None, batch_size)
        bound = _softmax._minibatch_curvature(X, None, batch_size, enough=0.0)
        assert 0 < bound <= exact * (1 + 1e-12)
        assert _softmax._minibatch_curvature(X, None, batch_size, enough=bound * 2) == exact
