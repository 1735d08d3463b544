"""Estimator ``fit`` on MNIST (issue 5, target 3).

* ``SoftmaxRegression().fit`` with its defaults, on every compiled backend:
  wall time of ``fit`` and, in ``extra_info``, the test accuracy, the number
  of epochs and the estimator's own training time (sum of
  ``history_["epoch_time"]``).
* ``LogisticRegression(max_iter=100).fit`` of fastsoftmax against
  scikit-learn's with the same arguments: wall time, both test accuracies and
  how far apart the two coefficient matrices are.

Both fit float32 pixels / 255.  These runs take seconds, so they use few
rounds (``$FASTSOFTMAX_BENCH_FIT_ROUNDS``, default 3; one for the numpy
backend) and warm up on 500 rows.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from benchutils import compiled_backends, impl_name, require, run

import fastsoftmax

MAX_ITER = 100
#: Rounds of the fits that take seconds.
FIT_ROUNDS = int(os.environ.get("FASTSOFTMAX_BENCH_FIT_ROUNDS", "3"))


def _accuracy(est, mnist):
    return float(np.mean(est.predict(mnist.X_test) == mnist.y_test))


def _rounds(backend):
    # The numpy reference has nothing to compile and is the slowest: one round is enough.
    return 1 if backend == "numpy" else FIT_ROUNDS


def _fitter(make, backend, X, y):
    def fit():
        with fastsoftmax.use_backend(backend):
            return _fit_quietly(make(), X, y)

    return fit


@pytest.mark.parametrize("backend", compiled_backends())
def test_softmax_regression_fit(benchmark, mnist, backend):
    SoftmaxRegression = require("SoftmaxRegression")
    benchmark.group = "fit SoftmaxRegression() mnist float32"
    est = run(
        benchmark,
        _fitter(SoftmaxRegression, backend, mnist.X, mnist.y),
        # the same kernels compiled on 500 rows rather than a full extra fit
        warmup=_fitter(SoftmaxRegression, backend, mnist.X[:500], mnist.y[:500]),
        rounds=_rounds(backend),
        impl=impl_name(backend),
        kind="fastsoftmax",
        backend=backend,
        data=mnist.source,
    )
    info = benchmark.extra_info
    info["test_accuracy"] = _accuracy(est, mnist)
    history = getattr(est, "history_", {})
    if history.get("epoch_time"):
        info["train_time"] = float(np.sum(history["epoch_time"]))
        info["epochs"] = len(history["epoch_time"])


def _logistic_info(benchmark, est, mnist):
    benchmark.extra_info["test_accuracy"] = _accuracy(est, mnist)
    benchmark.extra_info["n_iter"] = int(np.max(getattr(est, "n_iter_", [-1])))


@pytest.fixture(scope="module")
def sklearn_logistic():
    """scikit-learn's fitted model, kept to compare coefficients with."""
    return {}


def _fit_quietly(est, X, y):
    with warnings.catch_warnings():
        # max_iter=100 stops lbfgs before convergence on MNIST: that is the setting compared
        warnings.filterwarnings("ignore", message=".*(converge|iterations).*")
        return est.fit(X, y)


def test_sklearn_logistic_regression(benchmark, mnist, sklearn, sklearn_logistic):
    from sklearn.linear_model import LogisticRegression

    benchmark.group = f"fit LogisticRegression(max_iter={MAX_ITER}) mnist float32"
    # no JIT to warm up, and one fit takes seconds: no warm-up call
    est = run(
        benchmark,
        lambda: _fit_quietly(LogisticRegression(max_iter=MAX_ITER), mnist.X, mnist.y),
        warmup=False,
        rounds=FIT_ROUNDS,
        impl="sklearn",
        kind="peer",
        data=mnist.source,
    )
    _logistic_info(benchmark, est, mnist)
    sklearn_logistic["coef"] = est.coef_


# The numpy backend is left out: the target is against scikit-learn, and one
# numpy-backend fit costs as much as scikit-learn's.
@pytest.mark.parametrize("backend", [b for b in compiled_backends() if b != "numpy"])
def test_logistic_regression(benchmark, mnist, sklearn, sklearn_logistic, backend):
    LogisticRegression = require("LogisticRegression")

    def make():
        return LogisticRegression(max_iter=MAX_ITER)

    benchmark.group = f"fit LogisticRegression(max_iter={MAX_ITER}) mnist float32"
    est = run(
        benchmark,
        _fitter(make, backend, mnist.X, mnist.y),
        warmup=_fitter(make, backend, mnist.X[:500], mnist.y[:500]),
        rounds=FIT_ROUNDS,
        impl=impl_name(backend),
        kind="fastsoftmax",
        backend=backend,
        data=mnist.source,
    )
    _logistic_info(benchmark, est, mnist)
    reference = sklearn_logistic.get("coef")
    if reference is not None and reference.shape == est.coef_.shape:
        diff = np.abs(np.asarray(est.coef_, np.float64) - reference)
        benchmark.extra_info["coef_max_abs_diff_vs_sklearn"] = float(diff.max())
        benchmark.extra_info["coef_rel_diff_vs_sklearn"] = float(
            np.linalg.norm(diff) / np.linalg.norm(reference)
        )
