"""The compiled whole-epoch kernel ``train_epoch`` of every backend that has one.

Each test runs epochs of ``train_epoch`` (of the cython and numba backends,
whichever are available here) and the same epochs as a plain NumPy loop that
implements the learner update rules of the project brief with the numpy
backend's ``softmax_cross_entropy_grad``, then compares the weights, the
learner state, the step counter and the epoch loss.
"""

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._backends import get_module

numpy_backend = get_module("numpy")

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
        loss, dW, db = fastsoftmax.softmax_cross_entropy_grad(
            Xf[idx], W, b, y[idx], l2=l2, sample_weight=swb, backend="numpy"
        )
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
            _, dW, db = fastsoftmax.softmax_cross_entropy_grad(
                X[idx], W_ref, b_ref, y[idx], backend="numpy"
            )
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
