"""A fit without extra passes over X (issue 13): label encoding and the validation split.

* integer labels of a small range are encoded by counting, exactly as
  ``np.unique(y, return_inverse=True)`` does;
* the early-stopping split trains on the training rows of X in place (no
  copy of X), giving the very model of training on the copied rows.
"""

import numpy as np
import pytest

from fastsoftmax import SoftmaxModel, SoftmaxRegression, Trainer, _epoch_driver
from fastsoftmax.estimators._base import _encode_labels, _unique_small_ints


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64,
                                   np.uint64])  # fmt: skip
@pytest.mark.parametrize("low, high", [(0, 2), (0, 10), (3, 7), (-5, 5), (-128, 127)])
def test_small_int_labels_as_np_unique(dtype, low, high):
    info = np.iinfo(dtype)
    if low < info.min or high > info.max:
        pytest.skip("out of the dtype's range")
    y = np.random.default_rng(high - low).integers(low, high + 1, 997).astype(dtype)
    y[:2] = low, high  # both ends present (int8: -128 and 127 overflow y - min)
    classes, y_idx = _unique_small_ints(y)
    expected_classes, expected_idx = np.unique(y, return_inverse=True)
    assert classes.dtype == expected_classes.dtype
    np.testing.assert_array_equal(classes, expected_classes)
    assert y_idx.dtype == np.intp
    np.testing.assert_array_equal(y_idx, expected_idx)


@pytest.mark.parametrize("y", [
    np.array([2**64 - 1, 2**64 - 3, 2**64 - 1], dtype=np.uint64),
    np.array([2**63 - 1, 2**63 - 5]),
    np.array([-(2**63), -(2**63) + 3]),
    np.array([10**9, 10**9 + 2, 10**9], dtype=np.int32),
])  # fmt: skip
def test_small_int_labels_at_the_dtype_limits(y):
    classes, y_idx = _unique_small_ints(y)
    expected_classes, expected_idx = np.unique(y, return_inverse=True)
    assert classes.dtype == expected_classes.dtype
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_array_equal(y_idx, expected_idx)


@pytest.mark.parametrize("y", [
    np.array([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]),  # a huge range
    np.array([0.0, 1.0, 2.0]),
    np.array(["a", "b", "a"]),
    np.array([True, False]),
    np.array([], dtype=np.int64),
])  # fmt: skip
def test_other_labels_go_to_np_unique(y):
    assert _unique_small_ints(y) is None


def test_encode_labels_of_the_estimators():
    est = SoftmaxRegression()
    y = np.array([7, 3, 7, 5, 3], dtype=np.int16)
    classes, y_idx = _encode_labels(y, est)
    np.testing.assert_array_equal(classes, [3, 5, 7])
    np.testing.assert_array_equal(y_idx, [2, 0, 2, 1, 0])
    with pytest.raises(ValueError, match="only one class"):
        _encode_labels(np.array([4, 4, 4]), est)


def _blobs(n=600, d=12, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = (rng.standard_normal((n_classes, d))[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X, y


@pytest.mark.parametrize("options", [
    dict(),
    dict(shuffle=False),
    dict(optimizer="adam", batch_size=50),
    dict(optimizer="momentum", weighted=True),
])  # fmt: skip
def test_validation_split_trains_the_rows_in_place(options):
    options = dict(options)
    weighted = options.pop("weighted", False)
    X, y = _blobs()
    sw = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    params = dict(max_epochs=3, tol=None, early_stopping=True, validation_fraction=0.2,
                  batch_size=32)  # fmt: skip
    params.update(options)
    est = SoftmaxRegression(random_state=0, **params).fit(X, y, sample_weight=sw)

    # the split of fit, done by hand: the model of training on copies of the rows
    rng = np.random.default_rng(0)
    order = rng.permutation(X.shape[0])
    n_val = int(round(0.2 * X.shape[0]))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    reference = SoftmaxRegression(random_state=rng, **params).fit(
        X[train], y[train], sample_weight=None if sw is None else sw[train],
        validation_data=(X[val], y[val]),
    )  # fmt: skip
    np.testing.assert_array_equal(est.coef_, reference.coef_)
    np.testing.assert_array_equal(est.intercept_, reference.intercept_)
    assert est.history_["train_loss"] == reference.history_["train_loss"]
    assert est.history_["val_loss"] == reference.history_["val_loss"]
    assert est.best_epoch_ == reference.best_epoch_


def test_validation_split_copies_no_training_rows(monkeypatch):
    X, y = _blobs()
    seen = []
    run_epoch = _epoch_driver.run_epoch

    def spy(trainer, X_epoch, y_epoch, sw, order, *args, **kwargs):
        seen.append((np.shares_memory(X_epoch, X), order.shape[0]))
        return run_epoch(trainer, X_epoch, y_epoch, sw, order, *args, **kwargs)

    monkeypatch.setattr(_epoch_driver, "run_epoch", spy)
    SoftmaxRegression(max_epochs=2, tol=None, early_stopping=True, validation_fraction=0.25,
                      random_state=0).fit(X, y)  # fmt: skip
    assert seen == [(True, 450), (True, 450)]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python-loop"])
def test_run_epoch_on_a_subset_of_rows(compiled):
    X, y = _blobs(n=300)
    rows = np.random.default_rng(2).permutation(300)[:170]

    def train(X_data, y_data, order):
        trainer = Trainer(SoftmaxModel(X.shape[1], 4), "sgd", track_train_error=False)
        loss = _epoch_driver.run_epoch(trainer, X_data, y_data, None, order, 16,
                                       compiled=compiled)  # fmt: skip
        return loss, trainer

    loss, trainer = train(X, y, rows)
    loss_copy, trainer_copy = train(np.ascontiguousarray(X[rows]), y[rows], None)
    assert loss == loss_copy
    np.testing.assert_array_equal(trainer.model.coef, trainer_copy.model.coef)
    assert trainer.n_samples_seen == trainer_copy.n_samples_seen == 170
    assert trainer.n_minibatches == trainer_copy.n_minibatches == 11
