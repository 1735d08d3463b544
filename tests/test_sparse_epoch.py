"""The lazy sparse SGD epoch (issue 10): on CSR input a minibatch touches only its features' rows.

The lazy step must equal the dense (eager) step of every row to rounding --
including the L2 shrinkage of the rows a minibatch skips, sample weights, a
subset of rows, no intercept, float32 and float64 -- and must really be lazy:
the kernel sees only the minibatch's columns.
"""

import numpy as np
import pytest

from fastsoftmax import SoftmaxModel, SoftmaxRegression, Trainer
from fastsoftmax import _sparse_epoch
from fastsoftmax._epoch_driver import run_epoch
from test_sparse_estimators import _assert_unchanged, _frozen, _unsorted_csr

sp = pytest.importorskip("scipy.sparse")


def _train(X, y, sample_weight, *, lazy, dtype=np.float64, l2=0.05, fit_intercept=True,
           learner="sgd", rows=None, batch_size=16, n_epochs=3, mean_weight=None):  # fmt: skip
    n_features, n_classes = X.shape[1], int(y.max()) + 1
    model = SoftmaxModel(n_features, n_classes, dtype=dtype, l2=l2, fit_intercept=fit_intercept,
                         init="normal", random_state=0)  # fmt: skip
    trainer = Trainer(model, learner, track_train_error=True)
    losses = []
    n = X.shape[0] if rows is None else rows.shape[0]
    for epoch in range(n_epochs):
        trainer.epoch = epoch
        order = np.random.default_rng(epoch).permutation(n)
        order = order if rows is None else rows[order]
        losses.append(run_epoch(trainer, X, y, sample_weight, order, batch_size, lazy=lazy,
                                mean_weight=mean_weight))  # fmt: skip
    counters = (trainer.learner.t, trainer.n_minibatches, trainer.n_samples_seen)
    return model, np.array(losses), trainer.running_loss, trainer.running_error, counters


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l2", [0.0, 0.05, 0.5])
@pytest.mark.parametrize("case", ["plain", "weights", "rows", "no_intercept"])
def test_lazy_epoch_equals_eager(rng, dtype, l2, case):
    X = _unsorted_csr(rng, 150, 60, 0.04, dtype=dtype)  # odd entries; many rows skip a feature
    y = rng.integers(0, 4, X.shape[0])
    y[:4] = np.arange(4)
    kwargs = dict(dtype=dtype, l2=l2)
    sample_weight = None
    if case == "weights":
        sample_weight = rng.uniform(0, 2, X.shape[0]).astype(dtype)
        sample_weight[::7] = 0
        kwargs["mean_weight"] = float(np.mean(sample_weight, dtype=np.float64))
    elif case == "rows":
        kwargs["rows"] = np.sort(rng.choice(X.shape[0], 100, replace=False))
    elif case == "no_intercept":
        kwargs["fit_intercept"] = False
    saved = _frozen(X)
    lazy = _train(X, y, sample_weight, lazy=True, **kwargs)
    eager = _train(X, y, sample_weight, lazy=False, **kwargs)
    _assert_unchanged(X, saved)
    rtol, atol = (1e-4, 1e-6) if dtype == np.float32 else (1e-10, 1e-13)
    assert lazy[0].coef.dtype == dtype and lazy[0].b.dtype == dtype
    np.testing.assert_allclose(lazy[0].coef, eager[0].coef, rtol=rtol, atol=atol)
    np.testing.assert_allclose(lazy[0].b, eager[0].b, rtol=rtol, atol=atol)
    np.testing.assert_allclose(lazy[1], eager[1], rtol=rtol)  # the epochs' losses, penalty too
    np.testing.assert_allclose(lazy[2], eager[2], rtol=rtol)
    assert lazy[3] == eager[3] and lazy[4] == eager[4]
    if not kwargs.get("fit_intercept", True):
        assert not lazy[0].b.any()


def test_lazy_epoch_float64_data_on_float32_model(rng):
    X = _unsorted_csr(rng, 80, 30, 0.1, dtype=np.float64)
    y = rng.integers(0, 3, X.shape[0])
    lazy = _train(X, y, None, lazy=True, dtype=np.float32)
    eager = _train(X, y, None, lazy=False, dtype=np.float32)
    assert lazy[0].coef.dtype == np.float32
    np.testing.assert_allclose(lazy[0].coef, eager[0].coef, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lazy[1], eager[1], rtol=1e-6)


def test_lazy_epoch_sees_only_the_minibatch_features(rng, monkeypatch):
    # the kernel gets the compact problem of each minibatch's distinct columns, never all rows
    X = sp.random(64, 5000, density=0.002, format="csr", random_state=3, dtype=np.float64)
    X.sum_duplicates()
    y = rng.integers(0, 3, X.shape[0])
    seen = []
    kernel = _sparse_epoch._data_kernel

    def recording(kernels, name, batch, coef, *args, **kwargs):
        seen.append((batch.shape, coef.shape))
        return kernel(kernels, name, batch, coef, *args, **kwargs)

    monkeypatch.setattr(_sparse_epoch, "_data_kernel", recording)
    order = rng.permutation(X.shape[0])
    model = SoftmaxModel(5000, 3, dtype=np.float64, l2=0.1)
    trainer = Trainer(model, "sgd", track_train_error=False)
    never = np.setdiff1d(np.arange(5000), X.indices)
    model.coef[:, never] = 1.0
    run_epoch(trainer, X, y, None, order, 8)
    assert len(seen) == 8
    for i, (shape, coef_shape) in enumerate(seen):
        features = np.unique(X[order[8 * i : 8 * i + 8]].indices)
        assert shape == (8, features.shape[0]) and coef_shape == (3, features.shape[0])
    assert sum(shape[1] for shape, _ in seen) <= X.nnz
    # the rows no minibatch touched are only shrunk, once, by the 8 steps' factor
    np.testing.assert_allclose(model.coef[:, never], (1 - 0.1 * trainer.learner.lr_at(0)) ** 8,
                               rtol=1e-12)  # fmt: skip


def test_only_plain_sgd_takes_the_lazy_step(rng):
    X = sp.random(20, 10, density=0.3, format="csr", random_state=0)
    model = SoftmaxModel(10, 2, dtype=np.float64)
    assert _sparse_epoch.lazy_sparse_applies(Trainer(model, "sgd"), X)
    assert not _sparse_epoch.lazy_sparse_applies(Trainer(model, "sgd"), X.toarray())
    for learner in ("momentum", "adam", "adagrad"):  # their state moves on every row: dense
        assert not _sparse_epoch.lazy_sparse_applies(Trainer(model, learner), X)
    l1_model = SoftmaxModel(10, 2, dtype=np.float64, l1=0.01)
    assert not _sparse_epoch.lazy_sparse_applies(Trainer(l1_model, "sgd"), X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_regression_lazy_sparse_equals_dense(rng, dtype, monkeypatch):
    X = _unsorted_csr(rng, 200, 50, 0.06, dtype=dtype)
    y = rng.integers(0, 4, X.shape[0])
    sample_weight = rng.uniform(0.5, 2.0, X.shape[0])
    calls = []
    epoch = _sparse_epoch.lazy_sparse_epoch
    monkeypatch.setattr("fastsoftmax._epoch_driver.lazy_sparse_epoch",
                        lambda *a, **k: calls.append(1) or epoch(*a, **k))  # fmt: skip
    kw = dict(max_epochs=4, batch_size=16, random_state=0, l2=0.01, learning_rate=2.0,
              class_weight="balanced")  # fmt: skip
    sparse_fit = SoftmaxRegression(**kw).fit(X, y, sample_weight=sample_weight)
    assert len(calls) == 4  # the CSR fit took the lazy step
    dense_fit = SoftmaxRegression(**kw).fit(X.toarray(), y, sample_weight=sample_weight)
    rtol, atol = (2e-4, 1e-6) if dtype == np.float32 else (1e-9, 1e-12)
    assert sparse_fit.coef_.dtype == dtype
    np.testing.assert_allclose(sparse_fit.coef_, dense_fit.coef_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(sparse_fit.intercept_, dense_fit.intercept_, rtol=rtol, atol=atol)
    np.testing.assert_allclose(sparse_fit.history_["train_loss"], dense_fit.history_["train_loss"],
                               rtol=rtol)  # fmt: skip
    # early stopping trains on a subset of the rows (a validation split), in place
    kw.update(early_stopping=True, n_iter_no_change=2)
    stopped_sparse = SoftmaxRegression(**kw).fit(X, y)
    stopped_dense = SoftmaxRegression(**kw).fit(X.toarray(), y)
    np.testing.assert_allclose(stopped_sparse.coef_, stopped_dense.coef_, rtol=rtol, atol=atol)
    assert stopped_sparse.n_iter_ == stopped_dense.n_iter_
