"""The compiled whole-epoch kernel ``train_epoch`` of every backend that has one.

Each test runs epochs of ``train_epoch`` (of the cython and numba backends,
whichever are available here) and the same epochs as a plain NumPy loop that
implements the learner update rules of the project brief with
``fastsoftmax.softmax_cross_entropy_grad`` on the numpy backend, then compares
the weights, the learner state, the step counter and the epoch loss.  That oracle is written
by hand, from nothing the code under test computes (not even the learner
table).  Further sections run every row of the learner table through the
Python rule and every compiled kernel, check the layouts used in place,
batch sizes above the number of rows, and the checks at the compiled boundary.
"""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import SoftmaxModel, Trainer, learners
from fastsoftmax._backends import _epoch_args, get_module


def reference_loss_grad(X, W, b, y, sample_weight, l2):
    """The minibatch loss and gradients of the public fused function on the numpy backend."""
    return fastsoftmax.softmax_cross_entropy_grad(
        X, W, b, y, l2=l2, sample_weight=sample_weight, backend="numpy"
    )


# The available backends whose module exports the optional train_epoch kernel.
EPOCH_BACKENDS = [
    name for name in fastsoftmax.backends() if hasattr(get_module(name), "train_epoch")
]


@pytest.fixture(params=EPOCH_BACKENDS)
def epoch_backend(request):
    """The kernel module of each backend with a train_epoch, in turn."""
    return get_module(request.param)

HYPERPARAMETERS = {
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.8},
    "adagrad": {"eps": 1e-8},
    "adadelta": {"rho": 0.95, "eps": 1e-6},
    "rmsprop": {"rho": 0.9, "eps": 1e-8},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}
STATE_NAMES = {
    "sgd": (),
    "momentum": ("velocity",),
    "nesterov": ("velocity",),
    "adagrad": ("sum_sq",),
    "adadelta": ("sq_grad_avg", "sq_update_avg"),
    "rmsprop": ("sq_grad_avg",),
    "adam": ("m", "v"),
}
LEARNING_RATES = {"adadelta": 1.0, "sgd": 0.5, "momentum": 0.1, "nesterov": 0.1}


def tolerances(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}


def reference_update(kind, p, g, state, hp, lr, t):
    """The update rules of the brief (COMMON.md), written directly in NumPy."""
    lr = p.dtype.type(lr)
    if kind == "sgd":
        p -= lr * g
    elif kind == "momentum":
        v = state["velocity"]
        v[...] = hp["momentum"] * v - lr * g
        p += v
    elif kind == "nesterov":
        v = state["velocity"]
        mu = hp["momentum"]
        v_prev = v.copy()
        v[...] = mu * v - lr * g
        p += -mu * v_prev + (1 + mu) * v
    elif kind == "adagrad":
        s = state["sum_sq"]
        s += g * g
        p -= lr * g / (np.sqrt(s) + hp["eps"])
    elif kind == "adadelta":
        eg, edx = state["sq_grad_avg"], state["sq_update_avg"]
        rho, eps = hp["rho"], hp["eps"]
        eg[...] = rho * eg + (1 - rho) * g * g
        dx = -np.sqrt(edx + eps) / np.sqrt(eg + eps) * g
        edx[...] = rho * edx + (1 - rho) * dx * dx
        p += lr * dx
    elif kind == "rmsprop":
        eg = state["sq_grad_avg"]
        rho = hp["rho"]
        eg[...] = rho * eg + (1 - rho) * g * g
        p -= lr * g / (np.sqrt(eg) + hp["eps"])
    elif kind == "adam":
        m, v = state["m"], state["v"]
        b1, b2 = hp["beta1"], hp["beta2"]
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + hp["eps"])
    else:  # pragma: no cover
        raise AssertionError(kind)


def reference_epoch(X, y, sw, W, b, order, batch_size, l2, fit_intercept, kind, hp, lr, t, state,
                    weight_mean=None):  # fmt: skip
    """One epoch as a Python loop over minibatches (updates W, b, state in place)."""
    total = 0.0
    Xf = X.astype(W.dtype)
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        swb = None if sw is None else sw[idx]
        loss, dW, db = reference_loss_grad(Xf[idx], W, b, y[idx], swb, l2)
        if swb is not None and weight_mean is not None:
            # data term divided by len(batch) * weight_mean instead of sum(swb)
            factor = float(np.sum(swb, dtype=np.float64)) / (len(idx) * weight_mean)
            penalty = 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64)))
            loss = factor * (loss - penalty) + penalty
            dW[...] = (dW - l2 * W) * factor + l2 * W
            db *= factor
        total += loss * len(idx)
        t += 1
        reference_update(kind, W, dW, state[0], hp, lr, t)
        if fit_intercept:
            reference_update(kind, b, db, state[1], hp, lr, t)
    return total / len(order), t


def make_problem(dtype, x_kind="float", n=37, d=13, C=5, seed=0):
    rng = np.random.default_rng(seed)
    if x_kind == "uint8":
        X = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
        scale = 1e-3  # keep the logits of byte-valued features moderate
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
        scale = 0.3
    y = rng.integers(0, C, size=n).astype(np.intp)
    W = (scale * rng.standard_normal((d, C))).astype(dtype)
    b = (0.1 * rng.standard_normal(C)).astype(dtype)
    sw = rng.uniform(0.0, 2.0, size=n).astype(dtype)
    return rng, X, y, W, b, sw


def new_state(kind, W, b):
    return [{name: np.zeros_like(p) for name in STATE_NAMES[kind]} for p in (W, b)]


def run_both(module, kind, dtype, *, x_kind="float", weighted=False, l2=0.0, fit_intercept=True,
             batch_size=8, epochs=2, weight_mean=None, C=5, n=37, d=13):  # fmt: skip
    rng, X, y, W, b, sw = make_problem(dtype, x_kind, n=n, d=d, C=C)
    sw = sw if weighted else None
    hp = HYPERPARAMETERS[kind]
    W_ref, b_ref = W.copy(), b.copy()
    state, state_ref = new_state(kind, W, b), new_state(kind, W, b)
    t = t_ref = 3  # a learner that has already taken steps
    losses, losses_ref = [], []
    for epoch in range(epochs):
        order = rng.permutation(X.shape[0])
        lr = LEARNING_RATES.get(kind, 0.05) / (1 + epoch)
        X_before, order_before = X.copy(), order.copy()
        loss, t = module.train_epoch(
            X, y, sw, W, b, order, batch_size, l2, fit_intercept, kind, hp, lr, t, state,
            weight_mean,
        )  # fmt: skip
        np.testing.assert_array_equal(X, X_before)  # inputs are never modified
        np.testing.assert_array_equal(order, order_before)
        loss_ref, t_ref = reference_epoch(
            X, y, sw, W_ref, b_ref, order, batch_size, l2, fit_intercept, kind, hp, lr, t_ref,
            state_ref, weight_mean,
        )  # fmt: skip
        losses.append(loss)
        losses_ref.append(loss_ref)
    return (W, b, state, t, losses), (W_ref, b_ref, state_ref, t_ref, losses_ref)


def assert_same(result, reference, dtype):
    (W, b, state, t, losses), (W_ref, b_ref, state_ref, t_ref, losses_ref) = result, reference
    tol = tolerances(dtype)
    assert W.dtype == dtype and b.dtype == dtype
    assert t == t_ref
    np.testing.assert_allclose(W, W_ref, **tol)
    np.testing.assert_allclose(b, b_ref, **tol)
    for got, want in zip(state, state_ref):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].dtype == dtype
            np.testing.assert_allclose(got[name], want[name], **tol, err_msg=name)
    np.testing.assert_allclose(losses, losses_ref, rtol=tol["rtol"])


@pytest.mark.parametrize("kind", sorted(HYPERPARAMETERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_epochs_match_numpy_reference_loop(epoch_backend, kind, dtype):
    result, reference = run_both(epoch_backend, kind, dtype)
    assert_same(result, reference, dtype)
    # 37 rows in batches of 8: 5 steps per epoch, 2 epochs, starting at t = 3
    assert result[3] == 3 + 2 * 5
    # the weights moved (the comparison is not between two untouched copies)
    assert not np.allclose(result[0], make_problem(dtype)[3])


@pytest.mark.parametrize("kind", ["sgd", "adam", "nesterov"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_l2_and_no_intercept(epoch_backend, kind, dtype):
    result, reference = run_both(
        epoch_backend, kind, dtype, weighted=True, l2=0.05, fit_intercept=False
    )
    assert_same(result, reference, dtype)
    np.testing.assert_array_equal(result[1], make_problem(dtype)[4])  # b left as it was


@pytest.mark.parametrize("kind", ["sgd", "rmsprop"])
def test_weight_mean_convention(epoch_backend, kind):
    # The estimator's convention: minibatch data terms divided by len(batch) * mean weight.
    result, reference = run_both(
        epoch_backend, kind, np.float64, weighted=True, l2=0.01, weight_mean=0.7
    )
    assert_same(result, reference, np.float64)
    plain, _ = run_both(epoch_backend, kind, np.float64, weighted=True, l2=0.01)
    assert not np.allclose(result[0], plain[0])  # the option does change the steps


@pytest.mark.parametrize("kind", ["adagrad", "momentum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uint8_features(epoch_backend, kind, dtype):
    result, reference = run_both(epoch_backend, kind, dtype, x_kind="uint8")
    assert_same(result, reference, dtype)


@pytest.mark.parametrize("C", [1, 2, 10])
@pytest.mark.parametrize("batch_size", [1, 4, 128])
def test_class_counts_and_batch_sizes(epoch_backend, C, batch_size):
    # odd/even class counts (pairs + remainder) and batches of 1 row, of a
    # 4-row tail, and larger than the data
    result, reference = run_both(epoch_backend, "adam", np.float32, C=C, batch_size=batch_size)
    assert_same(result, reference, np.float32)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["sgd", "momentum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [37, 128])
def test_mnist_shaped_minibatches_split_into_chunks(
    epoch_backend, restore_num_threads, threads, kind, dtype, batch_size
):
    # 784 features: a minibatch spans several cache-sized chunks of rows (the
    # compiled kernels work through ~128 KiB of X at a time), plus a tail.
    fastsoftmax.set_num_threads(threads)
    result, reference = run_both(
        epoch_backend, kind, dtype, batch_size=batch_size, C=10, n=300, d=784, weighted=True,
        l2=0.01,
    )
    assert_same(result, reference, dtype)


def test_agrees_with_the_learners_module(epoch_backend):
    learners = pytest.importorskip("fastsoftmax.learners")
    for kind in ("momentum", "adam", "adadelta"):
        _, X, y, W, b, _ = make_problem(np.float32)
        learner = learners.get_learner(kind, learning_rate=0.05)
        W_ref, b_ref = W.copy(), b.copy()
        learner.init_state([W_ref, b_ref])
        state = [{k: a.copy() for k, a in s.items()} for s in learner.state]
        order = np.arange(X.shape[0])[::-1].copy()
        loss, t = epoch_backend.train_epoch(
            X, y, None, W, b, order, 8, 0.0, True, kind, learner.hyperparameters(),
            learner.lr_at(0), learner.t, state,
        )  # fmt: skip
        for lo in range(0, len(order), 8):
            idx = order[lo : lo + 8]
            _, dW, db = reference_loss_grad(X[idx], W_ref, b_ref, y[idx], None, 0.0)
            learner.step([W_ref, b_ref], [dW, db])
        assert t == learner.t == 5
        np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)
        for got, want in zip(state, learner.state):
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7)


def test_empty_order_is_a_no_op(epoch_backend):
    _, X, y, W, b, _ = make_problem(np.float64)
    W0, b0 = W.copy(), b.copy()
    loss, t = epoch_backend.train_epoch(
        X, y, None, W, b, np.empty(0, np.intp), 8, 0.0, True, "sgd", {}, 0.1, 7, None
    )
    assert (loss, t) == (0.0, 7)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"kind": "adamw"}, "unknown learner kind 'adamw'"),
        ({"hyperparameters": {}}, "needs hyperparameter 'momentum'"),
        ({"state": [{}, {}]}, "no array 'velocity'"),
        ({"state": [{"velocity": np.zeros((13, 5))}]}, "one dict per parameter"),
        ({"state": [{"velocity": np.zeros((5, 13))}, {}]}, r"must be an array of shape \(13, 5\)"),
        ({"order": np.array([0, 99])}, "order must index rows"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_bad_arguments(epoch_backend, change, match):
    _, X, y, W, b, _ = make_problem(np.float64)
    args = {
        "kind": "momentum",
        "hyperparameters": {"momentum": 0.9},
        "state": new_state("momentum", W, b),
        "order": np.arange(X.shape[0]),
        "batch_size": 8,
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        epoch_backend.train_epoch(
            X, y, None, W, b, args["order"], args["batch_size"], 0.0, True, args["kind"],
            args["hyperparameters"], 0.1, 0, args["state"],
        )  # fmt: skip


# ----------------------------------------------------------------------------- the learner table
#
# Every row of fastsoftmax.learners.LEARNER_TABLE against every compiled epoch
# kernel, with the Python rule (Learner.step through Trainer.train_minibatch) as
# the reference: a learner added to the table must get its compiled branches.




def table_rows():
    return [pytest.param(row, id=row.kind) for row in learners.LEARNER_TABLE]


def test_table_matches_the_independent_oracle():
    # The oracle above names the states and hyper-parameters by hand, in the
    # kernels' order: the table must say the same of those learners (a learner
    # added later is checked by the table-wide tests below).
    assert set(STATE_NAMES) == set(HYPERPARAMETERS) <= set(learners.LEARNERS)
    for kind, names in STATE_NAMES.items():
        row = learners.learner_spec(kind)
        assert row.state_names == names
        assert row.hyperparameter_names == tuple(HYPERPARAMETERS[kind])
    assert learners.LEARNERS == {row.kind: row.cls for row in learners.LEARNER_TABLE}


@pytest.mark.parametrize("row", table_rows())
def test_table_rows_describe_their_classes(row):
    learner = row.cls()
    assert learner.kind == row.kind and learners.learner_spec(row.kind) is row
    assert tuple(learner.hyperparameters()) == row.hyperparameter_names
    p = np.zeros((3, 2))
    learner.init_state([p])
    assert tuple(learner.state[0]) == row.state_names


def test_table_refuses_repeated_kinds_and_codes():
    class Twin(learners.SGD):  # the code of SGD under another name
        kind = "twin"

    class NoCode(learners.SGD):
        kind = "nocode"
        _kernel_code = None

    with pytest.raises(RuntimeError, match="repeats a code"):
        learners._table((learners.SGD, Twin))
    with pytest.raises(RuntimeError, match="repeats a kind"):
        learners._table((learners.SGD, learners.SGD))
    with pytest.raises(RuntimeError, match="integer _kernel_code"):
        learners._table((NoCode,))


def python_rule_epoch(learner, model, X, y, order, batch_size):
    """One epoch of the Python rule: Trainer.train_minibatch over the minibatches of ``order``."""
    trainer = Trainer(model, learner, track_train_error=False)
    total = 0.0
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        total += trainer.train_minibatch(X[idx], y[idx]) * len(idx)
    return total / len(order)


@pytest.mark.parametrize("layout", ["coef.T", "C"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("row", table_rows())
def test_every_learner_of_the_table_agrees_with_its_python_rule(epoch_backend, row, dtype, layout):
    rng, X, y, W0, b0, _ = make_problem(dtype)
    order = rng.permutation(X.shape[0])
    model = SoftmaxModel(X.shape[1], W0.shape[1], dtype=dtype, l2=0.01)
    model.W[...], model.b[...] = W0, b0
    reference = row.cls()  # the learner's defaults
    loss_ref = python_rule_epoch(reference, model, X, y, order, 8)

    learner = row.cls()
    coef = np.ascontiguousarray(W0.T)
    W = coef.T if layout == "coef.T" else W0.copy()  # (d, C), F- or C-contiguous
    b = b0.copy()
    learner.init_state([W, b])
    loss, t = epoch_backend.train_epoch(
        X, y, None, W, b, order, 8, 0.01, True, row.kind, learner.hyperparameters(),
        learner.lr_at(0), learner.t, learner.state,
    )  # fmt: skip
    tol = tolerances(dtype)
    assert t == reference.t == 5
    assert loss == pytest.approx(loss_ref, rel=tol["rtol"])
    np.testing.assert_allclose(W, model.W, **tol)
    np.testing.assert_allclose(b, model.b, **tol)
    for got, want in zip(learner.state, reference.state):
        assert tuple(got) == tuple(want) == row.state_names
        for name in row.state_names:
            np.testing.assert_allclose(got[name], want[name], **tol, err_msg=name)
            assert got[name].flags.f_contiguous == W.flags.f_contiguous or got[name].ndim == 1
    assert not np.allclose(W, W0)  # the learner did move the weights


class Unknown(learners.SGD):
    """A learner put into the table without compiled branches."""

    kind = "unknown"
    _kernel_code = 99


class MomentumUnderSGDsCode(learners.Momentum):
    """A row whose code has a branch that reads other numbers of states and hyper-parameters."""

    kind = "momentum-as-sgd"
    _kernel_code = 0  # SGD's branch: no state, no hyper-parameter


def put_into_table(monkeypatch, cls, *, replace=()):
    classes = [row.cls for row in learners.LEARNER_TABLE if row.cls not in replace] + [cls]
    monkeypatch.setattr(learners, "LEARNER_TABLE", learners._table(classes))
    monkeypatch.setitem(learners.LEARNERS, cls.kind, cls)


@pytest.mark.parametrize(
    "cls, replace, match",
    [
        (Unknown, (), "'unknown' .*has no compiled update rule in the {backend} epoch kernel"),
        (MomentumUnderSGDsCode, (learners.SGD,), "update rule of code 0 .*reads other numbers"),
    ],
)
def test_a_table_row_without_its_compiled_branch_fails_before_any_update(
    monkeypatch, epoch_backend, cls, replace, match
):
    put_into_table(monkeypatch, cls, replace=replace)
    backend = epoch_backend.__name__.rsplit(".", 1)[-1]
    _, X, y, W, b, _ = make_problem(np.float64)
    learner = cls()
    learner.init_state([W, b])
    before = W.copy(), b.copy(), [{k: a.copy() for k, a in s.items()} for s in learner.state]
    with pytest.raises(ValueError, match=match.format(backend=backend)):
        epoch_backend.train_epoch(
            X, y, None, W, b, np.arange(X.shape[0]), 8, 0.0, True, cls.kind,
            learner.hyperparameters(), 0.1, 0, learner.state,
        )  # fmt: skip
    np.testing.assert_array_equal(W, before[0])
    np.testing.assert_array_equal(b, before[1])
    for got, want in zip(learner.state, before[2]):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_the_estimator_fails_loudly_on_a_table_row_without_branches(monkeypatch, epoch_backend):
    put_into_table(monkeypatch, Unknown)
    _, X, y, *_ = make_problem(np.float32)
    model = fastsoftmax.SoftmaxRegression(optimizer="unknown", max_epochs=1)
    with fastsoftmax.use_backend(epoch_backend.__name__.rsplit(".", 1)[-1]):
        with pytest.raises(ValueError, match="no compiled update rule"):
            model.fit(X, y)


def test_cython_kernel_refuses_an_unknown_code_itself():
    kernels = pytest.importorskip("fastsoftmax._cython_kernels")
    _, X, y, W, b, _ = make_problem(np.float64)
    WT = np.ascontiguousarray(W.T)
    assert kernels.learner_update_status(99, 0, 0) == 1
    assert kernels.learner_update_status(0, 0, 0) == 0
    assert kernels.learner_update_status(0, 1, 0) == 2
    with pytest.raises(ValueError, match="no update rule for learner code 99"):
        kernels.train_epoch(X, y, np.empty(0), 0.0, WT, b, np.arange(X.shape[0]), 8, 0.0, True,
                            99, np.empty(0), 0.1, 0, [], [], 1)  # fmt: skip
    np.testing.assert_array_equal(WT, W.T)


def test_numba_kernel_stops_before_any_update_on_a_code_it_lacks():
    # What a stale on-disk cache of the kernel would meet: an update rule that
    # says "no branch" inside the loop.  The kernel stops, changing nothing.
    numba_backend = pytest.importorskip("fastsoftmax._backends.numba")
    _, X, y, W, b, _ = make_problem(np.float64)
    WT, b0 = np.ascontiguousarray(W.T), b.copy()
    empty = np.empty(0)
    loss, t, status = numba_backend._train_epoch_kernel(
        X, y, empty, 0.0, WT, b, np.arange(X.shape[0]), 8, 0.0, True, 99, empty, 0.1, 0,
        (empty, empty), (empty, empty), 0, np.empty_like(WT), np.empty((8, 16)),
    )  # fmt: skip
    assert status == 1 and t == 1
    np.testing.assert_array_equal(WT, W.T)
    np.testing.assert_array_equal(b, b0)


# ----------------------------------------------------------------------------- layouts


def test_coef_layout_and_zeros_like_states_are_used_without_copies(epoch_backend):
    # SoftmaxModel stores coef (C, d) C-contiguous and exposes W = coef.T; the
    # learner's states are made like W.  The kernels then work in place.
    rng, X, y, W0, b0, _ = make_problem(np.float32)
    coef = np.ascontiguousarray(W0.T)
    W, b = coef.T, b0.copy()
    learner = learners.Adam(learning_rate=0.05)
    learner.init_state([W, b])
    assert all(a.flags.f_contiguous for a in learner.state[0].values())
    args = _epoch_args.prepare(X, y, None, W, b, np.arange(10), 8, True, "adam",
                               learner.hyperparameters(), learner.state)  # fmt: skip
    assert args.copies == []
    assert np.shares_memory(args.WT, coef) and args.b is b
    for flat, name in zip(args.states_W, ("m", "v")):
        assert np.shares_memory(flat, learner.state[0][name])

    # the same epoch on a C-contiguous W and states (copied in and back) is bit for bit the same
    W_c, b_c = W0.copy(), b0.copy()
    state_c = new_state("adam", W_c, b_c)
    order = rng.permutation(X.shape[0])
    for W_, b_, state in ((W, b, learner.state), (W_c, b_c, state_c)):
        epoch_backend.train_epoch(X, y, None, W_, b_, order, 8, 0.01, True, "adam",
                                  learner.hyperparameters(), 0.05, 0, state)  # fmt: skip
    np.testing.assert_array_equal(coef.T, W_c)
    np.testing.assert_array_equal(b, b_c)
    for name in ("m", "v"):
        np.testing.assert_array_equal(learner.state[0][name], state_c[0][name])
        np.testing.assert_array_equal(learner.state[1][name], state_c[1][name])
    assert not np.allclose(coef.T, W0)


def test_states_in_another_layout_than_W_are_copied_in_and_back(epoch_backend):
    result, reference = run_both(epoch_backend, "rmsprop", np.float64)  # all C-contiguous
    rng, X, y, W0, b0, _ = make_problem(np.float64)
    W = np.ascontiguousarray(W0.T).T  # F-contiguous, its states C-contiguous, b strided
    b_storage = np.zeros(2 * b0.size)
    b = b_storage[::2]
    b[...] = b0
    state = new_state("rmsprop", W0, b0)
    state[1]["sq_grad_avg"] = np.zeros(2 * b0.size)[::2]
    t = 3
    for epoch in range(2):
        order = rng.permutation(X.shape[0])
        _, t = epoch_backend.train_epoch(
            X, y, None, W, b, order, 8, 0.0, True, "rmsprop", HYPERPARAMETERS["rmsprop"],
            LEARNING_RATES.get("rmsprop", 0.05) / (1 + epoch), t, state,
        )  # fmt: skip
    np.testing.assert_array_equal(W, result[0])
    np.testing.assert_array_equal(b, result[1])
    np.testing.assert_array_equal(state[0]["sq_grad_avg"], result[2][0]["sq_grad_avg"])
    np.testing.assert_array_equal(state[1]["sq_grad_avg"], result[2][1]["sq_grad_avg"])
    assert_same(result, reference, np.float64)


# ----------------------------------------------------------------------------- batch sizes above n


@pytest.mark.parametrize("batch_size", [37, 38, 10**6, 2**62, 2**63 - 1])
def test_a_batch_larger_than_the_data_is_the_full_batch(epoch_backend, batch_size):
    full, _ = run_both(epoch_backend, "momentum", np.float32, batch_size=37)
    big, _ = run_both(epoch_backend, "momentum", np.float32, batch_size=batch_size)
    assert big[3] == full[3] == 3 + 2  # one step per epoch
    np.testing.assert_array_equal(big[0], full[0])
    np.testing.assert_array_equal(big[1], full[1])
    assert big[4] == full[4]


def run_python(code, *args, timeout=300):
    """Run ``code`` in a fresh interpreter (a crash there fails the test, not the run)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_estimator_with_a_huge_batch_size_fits_the_full_batch():
    # issue 16: the Cython epoch allocated 2 * batch_size row pointers, so
    # 2**62 wrapped around and corrupted the heap (free(): invalid next size).
    result = run_python(
        """
        import numpy as np
        import fastsoftmax as fs

        rng = np.random.default_rng(0)
        X, y = rng.random((40, 3)), np.arange(40) % 3
        for backend in fs.backends():
            with fs.use_backend(backend):
                full = fs.SoftmaxRegression(batch_size=40, max_epochs=3).fit(X, y)
                for batch_size in (2**62, 2**60 + 1, 2**61, 10**12):
                    big = fs.SoftmaxRegression(batch_size=batch_size, max_epochs=3).fit(X, y)
                    np.testing.assert_allclose(big.coef_, full.coef_, rtol=1e-6, atol=1e-7)
            print(backend, "ok")
        fs.SoftmaxRegression(batch_size=2**62).fit(np.random.rand(40, 3), np.arange(40) % 3)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "cython ok" in result.stdout or "numba ok" in result.stdout, result.stdout


def test_cli_train_with_a_huge_batch_size():
    result = run_python(
        "import sys; from fastsoftmax.cli import main; sys.exit(main(sys.argv[1:]))",
        "train", "--dataset", "digits", "--epochs", "1", "--batch-size", "4611686018427387904",
        "--learning-rate", "0.5", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test accuracy:" in result.stdout


# ------------------------------------------------------------------- the compiled boundary
#
# Wrong sizes or labels reaching the compiled epochs raise instead of reading or
# writing out of bounds (issue 16).  Probed in a subprocess, so that a crash fails
# these tests instead of the test run.

BOUNDARY_PROBE = """
import json, sys
import numpy as np
from fastsoftmax._backends import get_module

rng = np.random.default_rng(0)
n, d, C = 20, 6, 4
X = rng.standard_normal((n, d))
y = rng.integers(0, C, n).astype(np.intp)
W, b = np.zeros((d, C)), np.zeros(C)
velocity = [{"velocity": np.zeros((d, C))}, {"velocity": np.zeros(C)}]


def wrapper_case(change):
    args = dict(X=X, y=y, sample_weight=None, W=W, b=b, order=np.arange(n), batch_size=8,
                l2=0.0, fit_intercept=True, kind="sgd", hyperparameters={}, lr=0.1, t=0,
                state=None)
    args.update(change)
    return lambda module: module.train_epoch(**args)


def kernel_case(change):
    args = dict(X=X, y=y, sample_weight=np.empty(0), weight_mean=0.0, WT=np.zeros((C, d)),
                b=np.zeros(C), order=np.arange(n), batch_size=8, l2=0.0, fit_intercept=True,
                code=1, hyperparameters=np.array([0.9]), lr=0.1, t=0,
                states_W=[np.zeros(C * d)], states_b=[np.zeros(C)], num_threads=1)
    args.update(change)
    return lambda module: module.train_epoch(*args.values())


WRAPPER = {
    "W rows != X columns": {"W": np.zeros((d + 1, C)), "state": None},
    "b size != W columns": {"b": np.zeros(C + 1)},
    "y shorter than X": {"y": y[:-1]},
    "sample_weight shorter than X": {"sample_weight": np.ones(n - 1)},
    "label == C": {"y": np.full(n, C)},
    "label < 0": {"y": np.full(n, -1)},
    "order past X": {"order": np.array([0, n])},
    "batch_size 0": {"batch_size": 0},
    "float64 X, float32 W": {"W": W.astype(np.float32), "b": b.astype(np.float32)},
    "state of another shape": {"kind": "momentum", "hyperparameters": {"momentum": 0.9},
                               "state": [{"velocity": np.zeros((C, d))}, {"velocity": b}]},
}
KERNEL = {
    "batch_size 0": {"batch_size": 0},
    "num_threads 0": {"num_threads": 0},
    "X columns != WT columns": {"WT": np.zeros((C, d + 1)), "states_W": [np.zeros(C * d + C)]},
    "y shorter than X": {"y": y[:-1]},
    "sample_weight shorter than X": {"sample_weight": np.ones(n - 1)},
    "b size != WT rows": {"b": np.zeros(C + 1), "states_b": [np.zeros(C + 1)]},
    "label == C": {"y": np.full(n, C, np.intp)},
    "label < 0": {"y": np.full(n, -1, np.intp)},
    "order past X": {"order": np.array([0, n], np.intp)},
    "order < 0": {"order": np.array([-1], np.intp)},
    "unknown code": {"code": 99},
    "too few hyper-parameters": {"hyperparameters": np.empty(0)},
    "state of W too short": {"states_W": [np.zeros(C * d - 1)]},
    "states of b missing": {"states_b": []},
    "too many states": {"states_W": [np.zeros(C * d)] * 5},
}
cases = {}
for backend in sys.argv[1:]:
    module = get_module(backend)
    todo = {f"{backend} train_epoch: {k}": wrapper_case(v) for k, v in WRAPPER.items()}
    if backend == "cython":
        from fastsoftmax import _cython_kernels
        todo.update({f"cython kernel: {k}": kernel_case(v) for k, v in KERNEL.items()})
        module_of = {name: _cython_kernels if "kernel:" in name else module for name in todo}
    else:
        module_of = dict.fromkeys(todo, module)
    for name, call in todo.items():
        try:
            call(module_of[name])
            cases[name] = ["no error", ""]
        except Exception as exc:
            cases[name] = [type(exc).__name__, str(exc)]
        print(json.dumps({name: cases[name]}), flush=True)
"""

WRAPPER_CASES = {
    "W rows != X columns": ("ValueError", "X must be 2-D with 7 columns"),
    "b size != W columns": ("ValueError", r"b must be a \(4,\) float64 array"),
    "y shorter than X": ("ValueError", r"y must have shape \(20,\)"),
    "sample_weight shorter than X": ("ValueError", "sample_weight must be None or a"),
    "label == C": ("ValueError", r"y must hold class indices in \[0, 4\): y\[0\] = 4"),
    "label < 0": ("ValueError", r"y must hold class indices in \[0, 4\): y\[0\] = -1"),
    "order past X": ("ValueError", r"order must index rows of X in \[0, 20\): order\[1\] = 20"),
    "batch_size 0": ("ValueError", "batch_size must be >= 1"),
    "float64 X, float32 W": ("TypeError", "X must be float32"),
    "state of another shape": ("ValueError", r"must be an array of shape \(6, 4\)"),
}
KERNEL_CASES = {
    "batch_size 0": ("ValueError", "batch_size and num_threads must be >= 1"),
    "num_threads 0": ("ValueError", "batch_size and num_threads must be >= 1"),
    "X columns != WT columns": ("ValueError", "X has 6 columns, WT 7"),
    "y shorter than X": ("ValueError", "X has 20 rows, y 19"),
    "sample_weight shorter than X": ("ValueError", "X has 20 rows, y 20, sample_weight 19"),
    "b size != WT rows": ("ValueError", "b has 5 entries, WT 4 rows"),
    "label == C": ("ValueError", r"y must hold class indices in \[0, 4\): y\[0\] = 4"),
    "label < 0": ("ValueError", r"y must hold class indices in \[0, 4\): y\[0\] = -1"),
    "order past X": ("ValueError", r"order must index rows of X in \[0, 20\): order\[1\] = 20"),
    "order < 0": ("ValueError", r"order must index rows of X in \[0, 20\): order\[0\] = -1"),
    "unknown code": ("ValueError", "no update rule for learner code 99"),
    "too few hyper-parameters": ("ValueError", "other numbers of states and hyper-parameters"),
    "state of W too short": ("ValueError", "state 0 of WT has 23 entries, expected 24"),
    "states of b missing": ("ValueError", "1 states of WT but 0 of b"),
    "too many states": ("ValueError", "at most 4 learner states"),
}


@pytest.mark.parametrize("bad", ["label", "row"])
def test_a_bad_row_late_in_the_epoch_raises_before_any_update(epoch_backend, bad):
    _, X, y, W, b, _ = make_problem(np.float64)
    order = np.arange(X.shape[0])
    if bad == "label":
        y = y.copy()
        y[order[-1]] = W.shape[1]
    else:
        order[-1] = X.shape[0]
    W0, b0 = W.copy(), b.copy()
    with pytest.raises(ValueError, match="y must hold class" if bad == "label" else "order must"):
        epoch_backend.train_epoch(X, y, None, W, b, order, 4, 0.0, True, "sgd", {}, 0.1, 0, None)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)


@pytest.fixture(scope="module")
def boundary_results():
    result = run_python(BOUNDARY_PROBE, *EPOCH_BACKENDS)
    found = {}
    for line in result.stdout.splitlines():
        found.update(json.loads(line))
    return found, result


def check_probe(boundary_results, name, expected):
    found, result = boundary_results
    assert name in found, f"the probe died (exit {result.returncode}) before {name!r}:\n" + (
        result.stderr[-2000:]
    )
    kind, message = found[name]
    assert kind == expected[0], (kind, message)
    assert re.search(expected[1], message), message



@pytest.mark.parametrize("backend", EPOCH_BACKENDS)
@pytest.mark.parametrize("case", sorted(WRAPPER_CASES))
def test_train_epoch_checks_shapes_and_labels(boundary_results, backend, case):
    check_probe(boundary_results, f"{backend} train_epoch: {case}", WRAPPER_CASES[case])


@pytest.mark.skipif("cython" not in EPOCH_BACKENDS, reason="the cython backend is not built")
@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_cython_kernel_checks_its_arguments(boundary_results, case):
    check_probe(boundary_results, f"cython kernel: {case}", KERNEL_CASES[case])


# ----------------------------------------------------------------------------- L1 (elastic-net)


def reference_l1_epoch(X, y, W, b, order, batch_size, l2, l1, kind, hp, lr, t, state):
    """One epoch with the L1 term ``l1 * ||W||_1``, written out in NumPy (OWL-QN's rule).

    The learner steps along the pseudo-gradient (``g + l1 sign(W)``; at 0 the
    descending one-sided derivative, or 0), and weights that leave their
    orthant stop at 0.
    """
    total = 0.0
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        loss, dW, db = reference_loss_grad(X[idx], W, b, y[idx], None, l2)
        total += (loss + l1 * float(np.abs(W).sum())) * len(idx)
        plus, minus = dW + W.dtype.type(l1), dW - W.dtype.type(l1)
        sign = np.where(W > 0, 1, np.where(W < 0, -1, np.where(plus < 0, 1, np.where(minus > 0, -1, 0))))
        pseudo = np.where(sign > 0, plus, np.where(sign < 0, minus, 0)).astype(W.dtype)
        t += 1
        reference_update(kind, W, pseudo, state[0], hp, lr, t)
        W[np.sign(W) != sign] = 0
        reference_update(kind, b, db, state[1], hp, lr, t)
    return total / len(order), t


@pytest.mark.parametrize("kind", sorted(HYPERPARAMETERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l1_epochs_match_numpy_reference_and_each_other(kind, dtype):
    # every learner of the table, on every compiled backend, against the NumPy rule above
    results = {}
    for name in EPOCH_BACKENDS:
        module = get_module(name)
        rng, X, y, W, b, _ = make_problem(dtype, n=61, d=17, C=4)
        W_ref, b_ref = W.copy(), b.copy()
        state, state_ref = new_state(kind, W, b), new_state(kind, W, b)
        hp, t, t_ref = HYPERPARAMETERS[kind], 0, 0
        for epoch in range(3):
            order = rng.permutation(X.shape[0])
            lr = LEARNING_RATES.get(kind, 0.05) / (1 + epoch)
            loss, t = module.train_epoch(X, y, None, W, b, order, 8, 0.01, True, kind, hp, lr, t,
                                         state, l1=0.1)  # fmt: skip
            loss_ref, t_ref = reference_l1_epoch(X, y, W_ref, b_ref, order, 8, 0.01, 0.1, kind,
                                                 hp, lr, t_ref, state_ref)  # fmt: skip
            np.testing.assert_allclose(loss, loss_ref, rtol=tolerances(dtype)["rtol"])
        assert t == t_ref
        tol = tolerances(dtype)
        np.testing.assert_allclose(W, W_ref, **tol)
        np.testing.assert_allclose(b, b_ref, **tol)
        assert np.array_equal(W == 0, W_ref == 0)  # the same sparsity pattern
        results[name] = W
    if kind != "adadelta":  # (whose first steps are too short to reach 0)
        assert (results[EPOCH_BACKENDS[0]] == 0).any()  # the L1 term did zero some weights
    for W in results.values():
        np.testing.assert_allclose(W, results[EPOCH_BACKENDS[0]], **tolerances(dtype))


def test_l1_epoch_of_the_trainer_loop_matches_the_compiled_kernel():
    # the Python minibatch loop (a Learner subclass: no compiled copy) takes the same steps
    class MyAdam(learners.Adam):
        pass

    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 9)).astype(np.float64)
    y = rng.integers(0, 3, 50)
    models = []
    for learner in (learners.Adam(0.05), MyAdam(0.05)):
        model = SoftmaxModel(9, 3, dtype=np.float64, l2=0.01, l1=0.05)
        trainer = Trainer(model, learner, track_train_error=False)
        trainer.train_epoch(X, y, batch_size=10, shuffle=False)
        models.append(model)
    np.testing.assert_allclose(models[0].coef, models[1].coef, rtol=1e-9, atol=1e-12)
    assert np.array_equal(models[0].coef == 0, models[1].coef == 0)
    assert (models[0].coef == 0).any()


def test_l1_is_checked_at_the_compiled_boundary(epoch_backend):
    _, X, y, W, b, _ = make_problem(np.float64)
    with pytest.raises(ValueError, match="l1 must be finite and non-negative"):
        epoch_backend.train_epoch(X, y, None, W, b, np.arange(8), 4, 0.0, True, "sgd", {}, 0.1,
                                  0, None, l1=-1.0)  # fmt: skip
