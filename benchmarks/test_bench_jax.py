"""JAX's compiled ``lax.scan`` epoch, the peer of issue 13's target 2.

One shuffled epoch of plain SGD on MNIST, batch 128, learning rate 0.1: the
same work as ``test_bench_epoch.py``, in its group, so that one run gives the
ratio of ``SoftmaxRegression(max_epochs=1).fit`` against it::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \\
        pytest benchmarks/test_bench_epoch.py benchmarks/test_bench_jax.py --benchmark-only

The whole epoch is one jitted function: the minibatch rows are gathered
inside the scan step (as a data loader would), the last short minibatch is
one more step outside the scan, and the shuffle (``jax.random.permutation``)
is part of the timed call.  XLA runs on one thread (``XLA_FLAGS`` in
``conftest.py``).
"""

from __future__ import annotations

import numpy as np
from benchutils import run
from test_bench_epoch import BATCH, GROUP, LR, _epoch_info


def test_jax_scan_epoch(benchmark, mnist, jax):
    import jax.numpy as jnp
    from jax import lax

    X = jax.device_put(mnist.X)
    y = jax.device_put(mnist.y.astype(np.int32))
    n, d = mnist.X.shape
    full = n // BATCH

    def loss(params, xb, yb):
        W, b = params
        logits = xb @ W + b
        lse = jax.scipy.special.logsumexp(logits, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(logits, yb[:, None], axis=1)[:, 0])

    import jax.scipy.special  # noqa: F401  (used inside loss)

    grad = jax.grad(loss)

    def sgd_step(params, rows):
        g = grad(params, X[rows], y[rows])
        return jax.tree_util.tree_map(lambda p, gp: p - LR * gp, params, g)

    @jax.jit
    def epoch(params, key):
        order = jax.random.permutation(key, n)
        batches = order[: full * BATCH].reshape(full, BATCH)
        params, _ = lax.scan(lambda p, rows: (sgd_step(p, rows), None), params, batches)
        if full * BATCH < n:  # the short last minibatch, as the other contenders train it
            params = sgd_step(params, order[full * BATCH :])
        return params

    state = {
        "params": (jnp.zeros((d, 10), jnp.float32), jnp.zeros(10, jnp.float32)),
        "key": jax.random.PRNGKey(0),
    }

    def one_epoch():
        state["key"], key = jax.random.split(state["key"])
        state["params"] = jax.block_until_ready(epoch(state["params"], key))
        return state["params"]

    benchmark.group = GROUP
    W, b = run(
        benchmark,
        one_epoch,
        min_rounds=5,
        **_epoch_info(mnist, impl="jax", kind="peer", how="jit(lax.scan) over shuffled batches"),
    )
    # a trained model, not a no-op: the same ballpark as the other contenders after a few epochs
    logits = np.asarray(mnist.X_test @ np.asarray(W) + np.asarray(b))
    accuracy = float(np.mean(logits.argmax(axis=1) == mnist.y_test))
    benchmark.extra_info["test_accuracy"] = accuracy
    assert accuracy > 0.85, accuracy
