"""Loss and gradient of softmax regression with many classes (issue 14).

N = 8192 rows, D = 256 float32 features, C in {1000, 10000, 50000} classes
(256,000 too with ``FASTSOFTMAX_BENCH_HUGE=1``), one thread unless said.  One
call computes the summed cross-entropy of ``X coef^T + b`` and its gradient
with respect to ``coef`` (C, D) and ``b``.  Contenders:

* ``fastsoftmax[<backend>]``: the kernel ``softmax_ce_sums`` of the default
  backend (tiled above about 2,000 classes here) with the skipping on and off,
  and of the numpy backend (tiled too: BLAS products over 1024 x 1024 tiles);
* ``torch``: ``F.linear_cross_entropy`` (PyTorch 2.13) and ``F.linear`` +
  ``F.cross_entropy`` + ``backward``, weights of shape (C, D) as in PyTorch,
  reduction "sum".

Groups: random weights (logits of unit spread: nothing to skip); the weights
of a model trained on the many-class task of ``many_class_task.py`` (one pass
over 100,000 rows), where the skipping pays; 1 vs 2 threads.  The peak extra
memory of one call at C = 50,000 is measured by tracemalloc (all scratch of
the compiled backend is allocated through numpy) and by the RSS growth, and
recorded in ``extra_info``.  ``flops`` counts the two products of the
gradient (4 N D C), whatever the kernel recomputes.
"""

from __future__ import annotations

import os
import resource
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from benchutils import impl_name, run

import fastsoftmax
from fastsoftmax._backends import get_module

sys.path.insert(0, str(Path(__file__).parent))
from many_class_task import make_task, one_pass_weights  # noqa: E402

N, D = 8192, 256
CLASSES = (1000, 10000, 50000) + ((256000,) if os.environ.get("FASTSOFTMAX_BENCH_HUGE") else ())
DEFAULT = fastsoftmax.backends()[0]


def _random_problem(C):
    rng = np.random.default_rng(14)
    X = rng.standard_normal((N, D), np.float32)
    coef = (rng.standard_normal((C, D), np.float32) / np.float32(np.sqrt(D)))
    return X, coef, np.zeros(C, np.float32), rng.integers(0, C, N).astype(np.intp)


_trained = {}


def _trained_problem(C, noise=2.0):
    """N rows of the task and the one-pass model of 100,000 other rows."""
    if C not in _trained:
        X_train, y_train, centres, _ = make_task(100000, C, D, noise=noise)
        coef, intercept = one_pass_weights(X_train, y_train, C, noise=noise)
        del X_train, y_train
        X, y, _, _ = make_task(N, C, D, noise=noise, seed=99, centres=centres)
        _trained[C] = X, coef, intercept, y
    return _trained[C]


def _kernel_call(backend, X, coef, intercept, y, skip=True):
    kernel = get_module(backend).softmax_ce_sums
    G, g = np.empty_like(coef), np.empty_like(intercept)
    return lambda: kernel(X, coef, intercept, y, None, G, g, skip_negligible=skip)


def _info(C, threads, **info):
    return dict({"threads": threads, "flops": 4 * N * D * C, "rows": N, "classes": C}, **info)


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("C", CLASSES)
def test_fastsoftmax_default(benchmark, C, skip):
    fn = _kernel_call(DEFAULT, *_random_problem(C), skip=skip)
    benchmark.group = f"many classes C={C} random weights 1 thread"
    run(benchmark, fn, min_rounds=2, **_info(C, 1, impl=impl_name(DEFAULT) + ("" if skip else " no-skip"),
                                              kind="fastsoftmax", backend=DEFAULT, skip=skip))  # fmt: skip


@pytest.mark.parametrize("C", CLASSES)
def test_fastsoftmax_numpy(benchmark, C):
    fn = _kernel_call("numpy", *_random_problem(C))
    benchmark.group = f"many classes C={C} random weights 1 thread"
    run(benchmark, fn, min_rounds=2, **_info(C, 1, impl=impl_name("numpy"), kind="fastsoftmax",
                                              backend="numpy"))  # fmt: skip


def _torch_call(api, X, coef, intercept, y):
    """One forward and backward pass of torch's ``api`` on the problem, as a callable."""
    import torch

    F = torch.nn.functional
    x, target = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    weight = torch.from_numpy(coef).requires_grad_()
    bias = torch.from_numpy(intercept).requires_grad_()

    def step():
        weight.grad = bias.grad = None
        if api == "linear_cross_entropy":
            loss = F.linear_cross_entropy(x, weight, target, linear_bias=bias, reduction="sum")
        else:
            loss = F.cross_entropy(F.linear(x, weight, bias), target, reduction="sum")
        loss.backward()
        return float(loss)

    return step


@pytest.mark.parametrize("api", ["linear_cross_entropy", "linear+cross_entropy"])
@pytest.mark.parametrize("C", CLASSES)
def test_torch(benchmark, C, api):
    torch = pytest.importorskip("torch")
    step = _torch_call(api, *_random_problem(C))
    benchmark.group = f"many classes C={C} random weights 1 thread"
    run(benchmark, step, min_rounds=2, **_info(C, 1, impl=f"torch {api}", kind="peer", api=api,
                                                torch=torch.__version__))  # fmt: skip


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("C", [c for c in CLASSES if c >= 10000])
def test_fastsoftmax_trained_model(benchmark, C, skip):
    X, coef, intercept, y = _trained_problem(C)
    fn = _kernel_call(DEFAULT, X, coef, intercept, y, skip=skip)
    # the gradient's relative error of the skipping, against the exact one
    exact = np.empty_like(coef), np.empty_like(intercept)
    get_module(DEFAULT).softmax_ce_sums(X, coef, intercept, y, None, *exact, skip_negligible=False)
    skipped = np.empty_like(coef), np.empty_like(intercept)
    loss, _ = get_module(DEFAULT).softmax_ce_sums(X, coef, intercept, y, None, *skipped)
    relative = float(np.linalg.norm(skipped[0] - exact[0]) / np.linalg.norm(exact[0]))
    benchmark.group = f"many classes C={C} trained model 1 thread"
    run(benchmark, fn, min_rounds=2, **_info(C, 1, impl=impl_name(DEFAULT) + ("" if skip else " no-skip"),
                                              kind="fastsoftmax", backend=DEFAULT, skip=skip,
                                              grad_relative_error=relative, mean_loss=loss / N))  # fmt: skip


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("C", [10000, 50000])
def test_fastsoftmax_threads(benchmark, C, threads):
    fn = _kernel_call(DEFAULT, *_random_problem(C), skip=False)
    benchmark.group = f"many classes C={C} random weights threads"
    run(benchmark, fn, min_rounds=2, **_info(C, threads, impl=impl_name(DEFAULT) + f" {threads}t",
                                              kind="fastsoftmax", backend=DEFAULT))  # fmt: skip


def _csr_problem(C, n_features=1024, entries_per_row=32):
    """N sparse rows (hashed-bag-of-words-like: 32 entries of 1,024 columns), random weights."""
    import scipy.sparse as sp

    rng = np.random.default_rng(14)
    indptr = np.arange(0, (N + 1) * entries_per_row, entries_per_row, dtype=np.int32)
    indices = rng.integers(0, n_features, N * entries_per_row).astype(np.int32)
    data = rng.standard_normal(N * entries_per_row, np.float32)
    X = sp.csr_matrix((data, indices, indptr), shape=(N, n_features))
    coef = rng.standard_normal((C, n_features), np.float32) / np.float32(np.sqrt(entries_per_row))
    return X, coef, np.zeros(C, np.float32), rng.integers(0, C, N).astype(np.intp)


@pytest.mark.parametrize("backend", [DEFAULT, "numpy"])
@pytest.mark.parametrize("C", [c for c in CLASSES if c >= 10000])
def test_fastsoftmax_csr(benchmark, C, backend):
    """CSR rows (tiled regime of softmax_ce_sums_csr), skipping off; numpy: scipy products."""
    X, coef, intercept, y = _csr_problem(C)
    kernel = get_module(backend).softmax_ce_sums_csr
    G, g = np.empty_like(coef), np.empty_like(intercept)
    benchmark.group = f"many classes C={C} CSR 1 thread"
    run(benchmark, lambda: kernel(X.data, X.indices, X.indptr, coef, intercept, y, None, G, g,
                                  skip_negligible=False),
        min_rounds=2, **_info(C, 1, impl=impl_name(backend) + " csr", kind="fastsoftmax",
                              backend=backend, flops=4 * X.nnz * C))  # fmt: skip


def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@pytest.mark.parametrize("backend", [DEFAULT, "numpy"])
def test_peak_extra_memory(benchmark, backend):
    """Peak extra memory of one call at C = 50,000 (target: at most 64 MB; the logits: 1.6 GB)."""
    C = 50000
    fn = _kernel_call(backend, *_random_problem(C))
    fn()  # warm: numba compiles, the gradient buffers are touched
    rss_before = _rss_bytes()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    traced_peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    rss_growth = _rss_bytes() - rss_before
    benchmark.group = "many classes C=50000 peak extra memory"
    run(benchmark, fn, rounds=1, warmup=False, **_info(
        C, 1, impl=impl_name(backend), kind="fastsoftmax", backend=backend,
        traced_peak_mb=traced_peak / 2**20, rss_growth_mb=rss_growth / 2**20,
        logits_mb=N * C * 4 / 2**20))  # fmt: skip
    assert traced_peak <= 64 * 2**20
