"""The cython ``train_epoch`` kernel on two threads or more: the feature split.

On 2+ threads the compiled epoch splits each minibatch by features (each
thread owns a range of whole cache lines of the weights' columns and meets
the others at one barrier per minibatch, ``src_cython/fs_epoch_split.h``).
Its results are those of the one-thread kernel and of the NumPy oracle of
``test_train_epoch`` up to rounding (the logits are summed in another order),
on odd shapes: features not a multiple of a cache line or fewer than a line
per thread, 1 to 17 classes, minibatches of 1 row, above the number of rows, a
short last one, a single row; every learner, L1, sample weights, uint8 and
float64 X, no intercept.  The estimators' thread setting reaches the split.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import SoftmaxModel, SoftmaxRegression, Trainer
from fastsoftmax._backends import get_module

from test_train_epoch import (  # the epoch tests' oracle and problems
    HYPERPARAMETERS,
    LEARNING_RATES,
    make_problem,
    new_state,
    reference_epoch,
    reference_l1_epoch,
    tolerances,
)

pytestmark = pytest.mark.skipif(
    "cython" not in fastsoftmax.backends(), reason="the cython backend is not built"
)


@pytest.fixture
def cy(monkeypatch, restore_num_threads):
    """The cython backend module, its epoch on as many threads as asked, whatever the size."""
    module = get_module("cython")
    monkeypatch.setattr(module, "_MIN_EPOCH_WORK_PER_THREAD", 1)
    return module


def split_columns(threads, batch_size, X, W):
    return get_module("cython")._k.epoch_split_columns(
        threads, batch_size, X.shape[1], X.itemsize, W.itemsize
    )


def epochs_of(one_epoch, W, b, kind, n, epochs, seed):
    """``epochs`` epochs ``one_epoch(W, b, state, order, lr, t) -> (loss, t)`` on copies."""
    W, b = W.copy(), b.copy()
    state = new_state(kind, W, b)
    rng, t, losses = np.random.default_rng(seed), 3, []
    for epoch in range(epochs):
        lr = LEARNING_RATES.get(kind, 0.05) / (1 + epoch)
        loss, t = one_epoch(W, b, state, rng.permutation(n), lr, t)
        losses.append(loss)
    return W, b, state, t, losses


def run_epochs(cy, threads, X, y, sw, W, b, kind, *, batch_size, epochs=2, l2=0.0, l1=0.0,
               fit_intercept=True, weight_mean=None, seed=1):  # fmt: skip
    """Epochs of the cython kernel on ``threads`` threads."""
    fastsoftmax.set_num_threads(threads)
    return epochs_of(
        lambda W, b, state, order, lr, t: cy.train_epoch(
            X, y, sw, W, b, order, batch_size, l2, fit_intercept, kind, HYPERPARAMETERS[kind],
            lr, t, state, weight_mean, l1=l1,
        ),
        W, b, kind, X.shape[0], epochs, seed,
    )  # fmt: skip


def oracle_epochs(X, y, sw, W, b, kind, *, batch_size, epochs=2, l2=0.0, l1=0.0,
                  fit_intercept=True, weight_mean=None, seed=1):  # fmt: skip
    """The same epochs as the NumPy loops of ``test_train_epoch``."""
    hp = HYPERPARAMETERS[kind]

    def one_epoch(W, b, state, order, lr, t):
        if l1:
            return reference_l1_epoch(X.astype(W.dtype), y, W, b, order, batch_size, l2, l1,
                                      kind, hp, lr, t, state)  # fmt: skip
        return reference_epoch(X, y, sw, W, b, order, batch_size, l2, fit_intercept, kind, hp,
                               lr, t, state, weight_mean)  # fmt: skip

    return epochs_of(one_epoch, W, b, kind, X.shape[0], epochs, seed)


def assert_close(got, want, dtype):
    (W, b, state, t, losses), (W_ref, b_ref, state_ref, t_ref, losses_ref) = got, want
    tol = tolerances(dtype)
    assert W.dtype == b.dtype == dtype and t == t_ref
    np.testing.assert_allclose(W, W_ref, **tol)
    np.testing.assert_allclose(b, b_ref, **tol)
    for part, part_ref in zip(state, state_ref):
        assert part.keys() == part_ref.keys()
        for name in part_ref:
            np.testing.assert_allclose(part[name], part_ref[name], **tol, err_msg=name)
    np.testing.assert_allclose(losses, losses_ref, rtol=tol["rtol"])


def check_split(cy, threads, X, y, sw, W, b, kind, dtype, **options):
    """The feature split against one thread and against the oracle; returns its result."""
    assert split_columns(threads, min(options["batch_size"], X.shape[0]), X, W) is not None
    split = run_epochs(cy, threads, X, y, sw, W, b, kind, **options)
    assert_close(split, run_epochs(cy, 1, X, y, sw, W, b, kind, **options), dtype)
    assert_close(split, oracle_epochs(X, y, sw, W, b, kind, **options), dtype)
    assert not np.allclose(split[0], W)  # the epochs did move the weights
    return split


# (rows, features, classes, batch): features fewer than a cache line a thread
# and not whole lines, 1 to 17 classes, batches of 1 row, above the rows, with
# a short last one, a single row
SHAPES = {
    "d<16": (37, 13, 3, 8),
    "d=50,C=17": (29, 50, 17, 5),
    "C=1": (20, 40, 1, 7),
    "C=2,B=1": (9, 70, 2, 1),
    "B>n": (20, 36, 5, 64),
    "n=1": (1, 33, 4, 4),
    "d=784,C=10": (70, 784, 10, 32),
}


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_odd_shapes_match_one_thread_and_the_oracle(cy, threads, shape):
    n, d, C, batch_size = SHAPES[shape]
    _, X, y, W, b, _ = make_problem(np.float32, n=n, d=d, C=C)
    W_split, b_split, *_ = check_split(cy, threads, X, y, None, W, b, "momentum", np.float32,
                                       batch_size=batch_size, l2=0.01)  # fmt: skip
    assert C == 1 or not np.allclose(b_split, b)  # the intercept moved too (one class: no residual)


@pytest.mark.parametrize("kind", sorted(HYPERPARAMETERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_learner(cy, kind, dtype):
    _, X, y, W, b, _ = make_problem(dtype, n=41, d=75, C=5)
    check_split(cy, 2, X, y, None, W, b, kind, dtype, batch_size=6, l2=0.01)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("kind", ["sgd", "adam", "rmsprop"])
def test_l1(cy, threads, kind):
    _, X, y, W, b, _ = make_problem(np.float64, n=45, d=60, C=4)
    W_split, *_ = check_split(cy, threads, X, y, None, W, b, kind, np.float64, batch_size=8,
                              epochs=3, l2=0.01, l1=0.1)  # fmt: skip
    assert (W_split == 0).any()  # the L1 term zeroed weights


@pytest.mark.parametrize("weight_mean", [None, 0.7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_weights_without_intercept(cy, weight_mean, dtype):
    _, X, y, W, b, sw = make_problem(dtype, n=43, d=48, C=6)
    W_split, b_split, *_ = check_split(cy, 2, X, y, sw, W, b, "adagrad", dtype, batch_size=9,
                                       l2=0.05, fit_intercept=False, weight_mean=weight_mean)  # fmt: skip
    np.testing.assert_array_equal(b_split, b)  # b left as it was


@pytest.mark.parametrize("x_kind, dtype", [("uint8", np.float32), ("uint8", np.float64),
                                           ("float", np.float64)])  # fmt: skip
@pytest.mark.parametrize("threads", [2, 3])
def test_uint8_and_float64_features(cy, x_kind, dtype, threads):
    _, X, y, W, b, sw = make_problem(dtype, x_kind, n=50, d=100, C=7)
    check_split(cy, threads, X, y, sw, W, b, "nesterov", dtype, batch_size=16, l2=0.01)


def test_columns_are_whole_cache_lines_of_weights():
    cy = get_module("cython")
    for threads, d, item in [(2, 784, 4), (3, 100, 8), (2, 13, 4), (4, 1000, 4)]:
        cols = cy._k.epoch_split_columns(threads, 32, d, 1, item)
        assert cols[0] == 0 and cols[-1] == d and cols == sorted(cols)
        assert all(f % (64 // item) == 0 for f in cols[:-1])
        widths = np.diff(cols)
        assert widths.max() - widths.min() <= 64 // item  # balanced to a line
    assert cy._k.epoch_split_columns(1, 32, 784, 4, 4) is None  # one thread: no split
    # minibatches whose share of rows would not stay in L2: the row split
    assert cy._k.epoch_split_columns(2, 60000, 784, 4, 4) is None


def test_a_smaller_team_than_asked_falls_back_to_the_row_split():
    # OMP_THREAD_LIMIT=1 gives the kernel's region one thread: the epoch runs
    # the row split (on that thread) instead, with the same result.
    code = textwrap.dedent(
        """
        import numpy as np
        from fastsoftmax import _cython_kernels as k
        rng = np.random.default_rng(0)
        X = rng.standard_normal((30, 40)).astype(np.float32)
        y = rng.integers(0, 3, 30)
        WT, b = np.zeros((3, 40), np.float32), np.zeros(3, np.float32)
        loss, t = k.train_epoch(X, y, np.empty(0, np.float32), 0.0, WT, b, rng.permutation(30),
                                8, 0.0, True, 0, np.empty(0), 0.1, 0, [], [], 2)
        print(t, loss, float(np.abs(WT).sum()) > 0)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "OMP_THREAD_LIMIT": "1"})  # fmt: skip
    t, loss, moved = out.stdout.split()
    assert t == "4" and moved == "True" and 0 < float(loss) < 2


@pytest.fixture
def split_calls(monkeypatch):
    """The feature splits the estimators' epochs asked for: (threads, batch, d) per epoch."""
    module = get_module("cython")
    calls, kernel = [], module._k.train_epoch

    def recording(X, y, sw, weight_mean, WT, b, order, batch_size, *args):
        threads = args[-2]
        if module._k.epoch_split_columns(threads, batch_size, X.shape[1], X.itemsize,
                                         WT.itemsize) is not None:  # fmt: skip
            calls.append((threads, batch_size, X.shape[1]))
        return kernel(X, y, sw, weight_mean, WT, b, order, batch_size, *args)

    monkeypatch.setattr(module, "_k", _Proxy(module._k, train_epoch=recording))
    return calls


class _Proxy:
    """A module with some attributes replaced."""

    def __init__(self, module, **replaced):
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._module, name)


def test_estimator_reaches_the_split_and_the_trainer_agrees(split_calls, restore_num_threads):
    # MNIST-sized rows: SoftmaxRegression on 2 threads trains with the feature
    # split and ends where it ends on one thread; so does the Trainer's
    # minibatch loop (which records each minibatch: no compiled epoch).
    rng = np.random.default_rng(0)
    X = rng.random((400, 784), dtype=np.float32)
    y = rng.integers(0, 10, 400)
    fits, models = {}, {}
    for threads in (1, 2):
        fastsoftmax.set_num_threads(threads)
        with fastsoftmax.use_backend("cython"):
            fits[threads] = SoftmaxRegression(optimizer="adam", learning_rate=0.01, batch_size=32,
                                              max_epochs=3, random_state=0, tol=None).fit(X, y)  # fmt: skip
            model = SoftmaxModel(784, 10, dtype=np.float32)
            Trainer(model, fastsoftmax.learners.SGD(learning_rate=0.1),
                    track_train_error=False).train_epoch(X, y, batch_size=64, shuffle=True,
                                                         random_state=0)  # fmt: skip
            models[threads] = model
    assert split_calls and {call[:2] for call in split_calls} == {(2, 32)}
    np.testing.assert_allclose(fits[2].coef_, fits[1].coef_, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(fits[2].intercept_, fits[1].intercept_, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(models[2].coef, models[1].coef, rtol=2e-4, atol=2e-5)
    assert not np.allclose(models[2].coef, 0)
