"""Full-batch loss and gradient of softmax regression on MNIST (issue 5, targets 1 and 5).

One call computes the mean cross-entropy of ``X @ W + b`` and its gradient
with respect to ``W`` and ``b`` over all 60,000 training rows.  Contenders:
every fastsoftmax backend (``naive`` only on a small problem), scikit-learn's
``LinearModelLoss.loss_gradient`` (what its ``LogisticRegression`` calls),
PyTorch (``F.linear`` + ``F.cross_entropy`` + ``backward``) and JAX
(jitted ``value_and_grad``), on one and on two threads.
"""

from __future__ import annotations

import fastsoftmax
import numpy as np
import pytest
from benchutils import all_backends, compiled_backends, impl_name, run

C = 10
THREADS = (1, 2)


def _group(data, dtype, threads):
    return f"grad {data} {dtype} {threads} thread{'s' if threads > 1 else ''}"


def _params(n_features):
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((n_features, C)) * 0.01).astype(np.float32)
    b = np.zeros(C, np.float32)
    return W, b


def _fastsoftmax_grad(backend, X, W, b, y):
    # the public function (validation and dispatch included); the backends'
    # kernel is softmax_ce_sums, which returns unnormalised sums
    grad = fastsoftmax.softmax_cross_entropy_grad
    return (lambda: grad(X, W, b, y, backend=backend)), "public"


def _info(X, threads, **info):
    n, d = X.shape
    # two products X @ W and X^T (P - Y), 2 flops per multiply-add
    return dict(threads=threads, flops=4 * n * d * C, rows=n, **info)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("backend", compiled_backends())
def test_fastsoftmax_mnist(benchmark, mnist, backend, dtype, threads):
    X = mnist.X if dtype == "float32" else mnist.X_u8
    W, b = _params(X.shape[1])
    fn, api = _fastsoftmax_grad(backend, X, W, b, mnist.y)
    benchmark.group = _group("mnist", dtype, threads)
    run(
        benchmark,
        fn,
        **_info(X, threads, impl=impl_name(backend), kind="fastsoftmax", backend=backend, api=api),
        data=mnist.source,
    )


@pytest.mark.parametrize("threads", THREADS)
def test_sklearn_loss_gradient(benchmark, mnist, sklearn, threads):
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=C), fit_intercept=True)
    W, b = _params(mnist.X.shape[1])
    # sklearn's layout: (n_classes, n_features + 1), intercept last; labels as floats
    coef = np.ascontiguousarray(np.hstack([W.T, b[:, None]]))
    y = mnist.y.astype(np.float32)
    benchmark.group = _group("mnist", "float32", threads)
    run(
        benchmark,
        lambda: loss.loss_gradient(coef, mnist.X, y, l2_reg_strength=0.0, n_threads=threads),
        **_info(mnist.X, threads, impl="sklearn", kind="peer"),
        data=mnist.source,
    )


@pytest.mark.parametrize("threads", THREADS)
def test_torch(benchmark, mnist, torch, threads):
    import torch.nn.functional as F

    W, b = _params(mnist.X.shape[1])
    X = torch.from_numpy(mnist.X)
    y = torch.from_numpy(mnist.y)
    weight = torch.tensor(W.T.copy(), requires_grad=True)  # F.linear takes (out, in)
    bias = torch.tensor(b, requires_grad=True)

    def step():
        weight.grad = bias.grad = None
        loss = F.cross_entropy(F.linear(X, weight, bias), y)
        loss.backward()
        return loss

    benchmark.group = _group("mnist", "float32", threads)
    run(benchmark, step, **_info(mnist.X, threads, impl="torch", kind="peer"), data=mnist.source)


@pytest.mark.parametrize("threads", [1])  # XLA's threads are fixed at import (conftest)
def test_jax(benchmark, mnist, jax, threads):
    import jax.numpy as jnp

    def loss(W, b, X, y):
        logits = X @ W + b
        lse = jax.scipy.special.logsumexp(logits, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])

    import jax.scipy.special  # noqa: F401  (used inside loss)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    W, b = _params(mnist.X.shape[1])
    args = [jax.device_put(a) for a in (W, b, mnist.X, mnist.y.astype(np.int32))]
    benchmark.group = _group("mnist", "float32", threads)
    run(
        benchmark,
        lambda: jax.block_until_ready(value_and_grad(*args)),
        **_info(mnist.X, threads, impl="jax", kind="peer"),
        data=mnist.source,
    )


@pytest.mark.parametrize("backend", all_backends())
def test_fastsoftmax_small(benchmark, backend):
    # Small enough for the pure-Python reference backend.
    rng = np.random.default_rng(3)
    X = rng.random((200, 64), dtype=np.float32)
    y = rng.integers(0, C, 200)
    W, b = _params(64)
    fn, api = _fastsoftmax_grad(backend, X, W, b, y)
    benchmark.group = _group("200x64", "float32", 1)
    run(
        benchmark,
        fn,
        **_info(X, 1, impl=impl_name(backend), kind="fastsoftmax", backend=backend, api=api),
    )


@pytest.mark.parametrize("threads", [1])
@pytest.mark.parametrize("what", ["sgemm 2048", "X @ W mnist"])
def test_blas_reference(benchmark, mnist, threads, what):
    # What one thread of NumPy's BLAS reaches: on a large square product (the
    # machine's practical peak) and on X @ W with 10 columns (the shape at issue).
    if what == "sgemm 2048":
        rng = np.random.default_rng(4)
        A = rng.standard_normal((2048, 2048), dtype=np.float32)
        B = rng.standard_normal((2048, 2048), dtype=np.float32)
        flops = 2 * 2048**3
    else:
        A, B = mnist.X, _params(mnist.X.shape[1])[0]
        flops = 2 * A.shape[0] * A.shape[1] * C
    out = np.empty((A.shape[0], B.shape[1]), np.float32)
    benchmark.group = "BLAS reference float32 1 thread"
    run(
        benchmark,
        lambda: np.matmul(A, B, out=out),
        impl=f"np.matmul {what}",
        kind="floor",
        threads=threads,
        flops=flops,
    )
