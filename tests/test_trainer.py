"""SoftmaxModel and the minibatch Trainer."""

import math

import numpy as np
import pytest

from fastsoftmax import SoftmaxModel, Trainer, softmax_cross_entropy_grad
from fastsoftmax.learners import SGD, StepDecay, get_learner
from fastsoftmax.trainer import iter_minibatches

LOG2 = math.log(2.0)


def mnist_like(n=500, d=20, n_classes=5, seed=0, dtype=np.float32):
    """Separable-ish "pixel" data in [0, 1]: one noisy prototype per class."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((n_classes, d))
    y = rng.integers(0, n_classes, size=n)
    X = np.clip(prototypes[y] + 0.25 * rng.standard_normal((n, d)), 0.0, 1.0)
    return X.astype(dtype), y


# settings that make 6 epochs of 10 minibatches meaningful; Adadelta's first
# steps are about sqrt(eps) in size, so its default eps 1e-6 starts too slowly
LEARNER_KWARGS = {
    "sgd": {"learning_rate": 0.5},
    "momentum": {"learning_rate": 0.1},
    "nesterov": {"learning_rate": 0.1},
    "adagrad": {"learning_rate": 0.1},
    "adadelta": {"learning_rate": 1.0, "eps": 1e-4},
    "rmsprop": {"learning_rate": 0.01},
    "adam": {"learning_rate": 0.01},
}


@pytest.mark.parametrize("name", list(LEARNER_KWARGS))
def test_each_learner_trains_to_a_falling_loss(name):
    X, y = mnist_like()
    model = SoftmaxModel(20, 5)
    trainer = Trainer(model, get_learner(name, **LEARNER_KWARGS[name]))
    start_loss, start_error = trainer.evaluate(X, y)
    assert start_loss == pytest.approx(math.log(5), rel=1e-6)  # zero weights: uniform
    rng = np.random.default_rng(1)
    epoch_losses = [trainer.train_epoch(X, y, batch_size=50, random_state=rng) for _ in range(6)]
    end_loss, end_error = trainer.evaluate(X, y)
    assert trainer.epoch == 6 and trainer.learner.t == 60
    assert epoch_losses[-1] < epoch_losses[0]
    assert end_loss < 0.6 * start_loss, (name, epoch_losses)
    assert end_error < 0.5 * start_error
    assert model.W.dtype == np.float32 and model.b.dtype == np.float32


def test_running_averages_by_hand():
    # zero model, SGD with lr 1: batch 1 has loss log 2 and error 1/2 (ties
    # predict class 0); its gradient dW = X^T (P - Y) / 2 = [[-.25, .25], [.25, -.25]]
    # gives W = [[.25, -.25], [-.25, .25]] (db = 0).
    trainer = Trainer(SoftmaxModel(2, 2, dtype=np.float64), SGD(learning_rate=1.0))
    assert math.isnan(trainer.running_loss) and math.isnan(trainer.running_error)
    loss1 = trainer.train_minibatch(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1])
    assert loss1 == pytest.approx(LOG2)
    np.testing.assert_allclose(trainer.model.W, [[0.25, -0.25], [-0.25, 0.25]])
    np.testing.assert_allclose(trainer.model.b, [0.0, 0.0], atol=1e-15)
    # batch 2, logits [.5, -.5], [-.75, .75], [0, 0], all labels 0:
    # errors 0, 1, 0 (tie -> class 0); losses log(1 + e^-1), log(1 + e^1.5), log 2
    loss2 = trainer.train_minibatch(np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]), [0, 0, 0])
    expected2 = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.5)) + LOG2) / 3
    assert loss2 == pytest.approx(expected2)
    assert trainer.last_loss == loss2
    assert trainer.last_error == pytest.approx(1 / 3)
    # averages per sample: (2 * batch1 + 3 * batch2) / 5
    assert trainer.running_loss == pytest.approx((2 * LOG2 + 3 * expected2) / 5)
    assert trainer.running_error == pytest.approx((2 * 0.5 + 3 * (1 / 3)) / 5)
    assert (trainer.n_minibatches, trainer.n_samples_seen) == (2, 5)
    trainer.reset_running()
    assert math.isnan(trainer.running_loss) and math.isnan(trainer.running_error)
    assert trainer.n_minibatches == 2  # counters are not running averages


def test_test_minibatch_by_hand():
    model = SoftmaxModel(2, 3, dtype=np.float64)
    model.W[...] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    model.b[...] = [0.0, 0.0, 0.5]
    trainer = Trainer(model, "adam")
    X = np.array([[2.0, 0.0], [0.0, 2.0], [0.1, 0.2], [1.0, 0.9]])
    # logits: [2, 0, .5] -> 0; [0, 2, .5] -> 1; [.1, .2, .5] -> 2; [1, .9, .5] -> 0
    W_before = model.W.copy()
    assert trainer.test_minibatch(X, [0, 1, 2, 0]) == 0.0
    assert trainer.test_minibatch(X, [0, 2, 2, 1]) == 0.5
    assert trainer.test_minibatch(X[:3], [1, 1, 1]) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(model.W, W_before)  # testing does not train
    assert trainer.learner.t == 0 and trainer.n_minibatches == 0
    assert trainer.last_test_error == pytest.approx(2 / 3)
    assert trainer.running_test_error == pytest.approx((0 + 2 + 2) / 11)
    np.testing.assert_array_equal(model.predict(X), [0, 1, 2, 0])
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    e = math.exp
    np.testing.assert_allclose(proba[0], np.array([e(2), 1, e(0.5)]) / (e(2) + 1 + e(0.5)))
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(proba))
    loss, error = trainer.evaluate(X, [0, 1, 2, 0])
    assert error == 0.0
    assert loss == pytest.approx(float(np.mean(-np.log(proba[np.arange(4), [0, 1, 2, 0]]))))


def test_loss_includes_l2_penalty():
    model = SoftmaxModel(2, 2, dtype=np.float64, l2=0.5)
    model.W[...] = 1.0
    X = np.zeros((3, 2))  # logits all 0: cross-entropy log 2
    loss, dW, db = model.loss_grad(X, [0, 1, 1])
    assert loss == pytest.approx(LOG2 + 0.5 * 0.5 * 4)
    np.testing.assert_allclose(dW, 0.5 * np.ones((2, 2)))
    np.testing.assert_allclose(db, [0.5 - 1 / 3, 0.5 - 2 / 3])
    assert model.loss(X, [0, 1, 1]) == pytest.approx(LOG2 + 1.0)
    trainer = Trainer(model)
    assert trainer.evaluate(X, [0, 1, 1])[0] == pytest.approx(LOG2 + 1.0)
    assert trainer.evaluate(X, [0, 1, 1], batch_size=2)[0] == pytest.approx(LOG2 + 1.0)


def test_evaluate_in_chunks_matches_whole():
    X, y = mnist_like(n=103, dtype=np.float64)
    model = SoftmaxModel(20, 5, dtype=np.float64, l2=0.01, init="normal", random_state=3)
    sw = np.random.default_rng(0).random(103)
    trainer = Trainer(model)
    for kwargs in ({}, {"sample_weight": sw}):
        whole = trainer.evaluate(X, y, **kwargs)
        chunked = trainer.evaluate(X, y, batch_size=10, **kwargs)
        np.testing.assert_allclose(chunked, whole, rtol=1e-12)


def test_no_intercept_keeps_b_zero():
    X, y = mnist_like(n=100)
    model = SoftmaxModel(20, 5, fit_intercept=False)
    assert len(model.parameters()) == 1
    trainer = Trainer(model, "adam")
    trainer.train_epoch(X, y, batch_size=25, random_state=0)
    assert np.all(model.b == 0)
    assert np.any(model.W != 0)
    loss, dW, db = model.loss_grad(X, y)
    assert np.all(db == 0)


def test_zero_weight_samples_are_ignored():
    X, y = mnist_like(n=30, dtype=np.float64)
    a = SoftmaxModel(20, 5, dtype=np.float64)
    b = SoftmaxModel(20, 5, dtype=np.float64)
    ta, tb = Trainer(a, SGD(0.5)), Trainer(b, SGD(0.5))
    w = np.ones(30)
    w[20:] = 0.0
    la = ta.train_minibatch(X, y, sample_weight=w)
    lb = tb.train_minibatch(X[:20], y[:20])
    assert la == pytest.approx(lb)
    np.testing.assert_allclose(a.W, b.W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a.b, b.b, rtol=1e-12, atol=1e-15)
    assert ta.running_loss == pytest.approx(lb)  # weighted by the total weight (20)


def test_float32_and_uint8_inputs_keep_float32():
    X, y = mnist_like(n=60)
    pixels = (X * 255).astype(np.uint8)
    for data in (X, pixels):
        model = SoftmaxModel(20, 5)
        Trainer(model, "momentum").train_minibatch(data, y)
        assert model.W.dtype == np.float32 and model.b.dtype == np.float32
        assert model.decision_function(data).dtype == np.float32
        assert model.predict_proba(data).dtype == np.float32


def test_inputs_not_modified():
    X, y = mnist_like(n=40)
    X0, y0 = X.copy(), y.copy()
    trainer = Trainer(SoftmaxModel(20, 5), "rmsprop")
    trainer.train_epoch(X, y, batch_size=8, random_state=0)
    trainer.test_minibatch(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_epoch_reaches_the_schedule():
    seen = []

    class Recording(SGD):
        def step(self, params, grads, epoch=0):
            seen.append((epoch, self.lr_at(epoch)))
            super().step(params, grads, epoch)

    X, y = mnist_like(n=20)
    halving = Recording(1.0, schedule=StepDecay(step_size=1, gamma=0.5))
    trainer = Trainer(SoftmaxModel(20, 5), halving)
    trainer.train_minibatch(X, y)
    trainer.next_epoch()
    trainer.train_minibatch(X, y)
    trainer.train_epoch(X, y, batch_size=10, shuffle=False)
    assert seen == [(0, 1.0), (1, 0.5), (1, 0.5), (1, 0.5)]
    assert trainer.epoch == 2


def test_train_epoch_same_seed_same_model():
    X, y = mnist_like(n=120)
    models = []
    for _ in range(2):
        model = SoftmaxModel(20, 5)
        trainer = Trainer(model, "nesterov")
        rng = np.random.default_rng(42)
        for _ in range(2):
            trainer.train_epoch(X, y, batch_size=32, random_state=rng)
        models.append(model)
    np.testing.assert_array_equal(models[0].W, models[1].W)
    other = SoftmaxModel(20, 5)
    Trainer(other, "nesterov").train_epoch(X, y, batch_size=32, random_state=7)
    assert not np.array_equal(other.W, models[0].W)


def test_iter_minibatches():
    assert list(iter_minibatches(7, 3)) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert list(iter_minibatches(0, 3)) == []
    batches = list(iter_minibatches(10, 4, shuffle=True, random_state=np.random.RandomState(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        list(iter_minibatches(10, 0))


def test_progress_line():
    trainer = Trainer(SoftmaxModel(2, 2), track_train_error=False)
    trainer.train_minibatch(np.eye(2, dtype=np.float32), [0, 1])
    trainer.test_minibatch(np.eye(2, dtype=np.float32), [1, 1])
    line = trainer.progress()
    assert line.startswith("epoch 0, minibatch 1: loss 0.6931 (running 0.6931)")
    assert "error 50.00%" not in line.split(", test")[0]  # train error not tracked
    assert line.endswith("test error 50.00%")
    assert math.isnan(trainer.running_error)


def test_model_validation():
    with pytest.raises(ValueError, match="n_classes must be >= 2, got 1"):
        SoftmaxModel(3, 1)
    with pytest.raises(TypeError, match="n_features must be an integer"):
        SoftmaxModel(3.0, 2)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int64"):
        SoftmaxModel(3, 2, dtype=np.int64)
    with pytest.raises(ValueError, match="init must be 'zeros' or 'normal'"):
        SoftmaxModel(3, 2, init="ones")
    with pytest.raises(ValueError, match="l2"):
        SoftmaxModel(3, 2, l2=-1.0)
    model = SoftmaxModel(3, 2)
    with pytest.raises(ValueError, match="X has 4 features, but the model expects 3 features"):
        model.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X has 4 features, but the model expects 3 features"):
        Trainer(model).train_minibatch(np.zeros((2, 4)), [0, 1])
    with pytest.raises(ValueError, match="contains label .*2.* but the model has 2 classes"):
        Trainer(model).train_minibatch(np.zeros((2, 3)), [0, 2])
    with pytest.raises(TypeError, match="model must provide parameters"):
        Trainer(object())
    with pytest.raises(ValueError, match="unknown learner 'bfgs'"):
        Trainer(model, "bfgs")


def test_normal_init_is_seeded():
    a = SoftmaxModel(4, 3, init="normal", random_state=0)
    b = SoftmaxModel(4, 3, init="normal", random_state=0)
    np.testing.assert_array_equal(a.W, b.W)
    assert a.W.dtype == np.float32
    assert 0 < np.abs(a.W).max() < 0.1
    assert np.all(SoftmaxModel(4, 3, random_state=0).W == 0)  # default init is zeros


# ----------------------------------------------------------------------------- the weights' layout


def test_model_stores_coef_and_w_is_its_view():
    model = SoftmaxModel(4, 3, init="normal", random_state=0)
    assert model.coef.shape == (3, 4) and model.coef.flags.c_contiguous
    assert model.W.shape == (4, 3) and np.shares_memory(model.W, model.coef)
    np.testing.assert_array_equal(model.W, model.coef.T)
    W, b = model.parameters()
    assert np.shares_memory(W, model.coef) and b is model.b
    W[0, 1] = 7.0  # in-place updates of the parameters train coef
    assert model.coef[1, 0] == 7.0
    new = np.arange(12.0).reshape(4, 3)
    model.W = new  # assigning copies in
    np.testing.assert_array_equal(model.coef, new.T)
    assert model.coef.dtype == np.float32 and model.coef.flags.c_contiguous
    new[...] = 0
    assert model.coef.any()
    with pytest.raises(ValueError, match=r"W must have shape \(4, 3\)"):
        model.W = np.zeros((3, 4))


def test_trainer_step_trains_coef_in_place():
    X, y = mnist_like(n=40)
    model = SoftmaxModel(20, 5)
    coef = model.coef
    Trainer(model, "adam").train_epoch(X, y, batch_size=8, random_state=0)
    assert model.coef is coef and np.any(coef != 0)


def test_loss_grad_keeps_its_layout():
    X, y = mnist_like(n=30, dtype=np.float64)
    model = SoftmaxModel(20, 5, dtype=np.float64, init="normal", random_state=1, l2=0.1)
    loss, dW, db = model.loss_grad(X, y)
    assert dW.shape == (20, 5) and db.shape == (5,)
    ref_loss, ref_dW, ref_db = softmax_cross_entropy_grad(X, model.W, model.b, y, l2=0.1)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(dW, ref_dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(db, ref_db, rtol=1e-10, atol=1e-14)


def test_trainer_validates_once_per_call(monkeypatch):
    """train_epoch checks the data once, not once a minibatch."""
    import sys

    from fastsoftmax._validation import check_data_matrix, check_labels

    X, y = mnist_like(n=60)
    for check in (check_data_matrix, check_labels):
        counts = []
        for batch_size in (60, 3):
            calls = [0]

            def profile(frame, event, arg, code=check.__code__, calls=calls):
                if event == "call" and frame.f_code is code:
                    calls[0] += 1

            trainer = Trainer(SoftmaxModel(20, 5), "sgd")
            sys.setprofile(profile)
            try:
                trainer.train_epoch(X, y, batch_size=batch_size, random_state=0)
            finally:
                sys.setprofile(None)
            counts.append(calls[0])
        assert counts[0] == counts[1], (check.__name__, counts)


def test_model_pickled_with_w_loads():
    """A SoftmaxModel pickled when it stored W itself unpickles with coef."""
    import pickle

    model = SoftmaxModel(4, 3, init="normal", random_state=0)
    state = {k: v for k, v in vars(model).items() if k != "coef"}
    state["W"] = np.ascontiguousarray(model.W)  # the old layout: W (d, C) C-contiguous
    old = SoftmaxModel.__new__(SoftmaxModel)
    old.__setstate__(state)
    np.testing.assert_array_equal(old.W, model.W)
    assert old.coef.flags.c_contiguous and "W" not in vars(old)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.coef, model.coef)


def test_evaluate_validates_once(monkeypatch):
    """evaluate checks the labels once, not once a chunk (the chunks use the private kernels)."""
    import fastsoftmax._loss_options as loss_options

    X, y = mnist_like(n=60)
    trainer = Trainer(SoftmaxModel(20, 5), "sgd")
    calls = []
    original = loss_options.class_targets
    monkeypatch.setattr(loss_options, "class_targets",
                        lambda *a, **k: calls.append(1) or original(*a, **k))  # fmt: skip
    whole = trainer.evaluate(X, y)
    chunked = trainer.evaluate(X, y, batch_size=7)
    assert calls == []  # the public cross_entropy's label check never ran
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 4, 1000])
def test_evaluate_and_loss_against_numpy(batch_size):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((23, 6))  # float64 data on a float32 model: computed in float64
    y = rng.integers(0, 3, size=23)
    model = SoftmaxModel(6, 3, l2=0.1, l1=0.05, init="normal", random_state=1)
    model.W[0] = [100.0, -100.0, 50.0]
    sw = rng.random(23)
    sw[::5] = 0.0
    clean = X.copy()
    X[::5] = 1e308  # the rows of weight 0 overflow to inf/NaN logits: dropped, never 0 * inf
    z = clean @ model.W.astype(np.float64) + model.b
    z[::5] = 0.0  # dropped rows
    ce = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1) - z[np.arange(23), y]
    W = model.W.astype(np.float64)
    penalty = 0.5 * 0.1 * np.sum(W**2) + 0.05 * np.sum(np.abs(W))
    expected = np.sum(sw * ce) / np.sum(sw) + penalty
    loss, error = Trainer(model).evaluate(X, y, sw, batch_size=batch_size)
    assert loss == pytest.approx(expected, rel=1e-7)  # the penalty of float32 weights
    keep = sw > 0
    assert model.loss(X[keep], y[keep], sw[keep]) == pytest.approx(expected, rel=1e-7)
    z_clean = clean @ W + model.b  # the error counts every row, unweighted
    error = Trainer(model).evaluate(clean, y, sw, batch_size=batch_size)[1]
    assert error == pytest.approx(np.mean(np.argmax(z_clean, 1) != y))


def test_loss_and_evaluate_check_their_arguments():
    model = SoftmaxModel(4, 3)
    X = np.zeros((5, 4), np.float32)
    with pytest.raises(ValueError, match="y"):
        model.loss(X, [0, 1, 2, 3, 0])  # label 3 of a 3-class model
    with pytest.raises(ValueError, match="sample_weight"):
        model.loss(X, [0, 1, 2, 1, 0], sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="features"):
        model.loss(np.zeros((5, 3)), [0, 1, 2, 1, 0])
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model).evaluate(X, [0, 1, 2, 1, 0], batch_size=0)
    assert Trainer(model).evaluate(X[:0], [])[0] == 0.0
