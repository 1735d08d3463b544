"""``LogisticRegression.fit`` on Dask arrays (issue 12).

Group "fit LogisticRegression mnist float32 dask" (multinomial, ``max_iter=100``):

* ``in-memory``: the NumPy fit, kernels on 1 thread;
* ``dask[1x1]`` / ``dask[2x1]``: the same data as a user holds it on a
  cluster: written to disk once as an ``.npy`` stack of 8 row blocks
  (``da.to_npy_stack``), read by the workers of a ``LocalCluster`` of 1 or 2
  worker processes with 1 thread each (``da.from_npy_stack``) and persisted
  there (``X.persist()``) before the timed fits.  Targets: ``dask[1x1]`` at
  most 1.3x ``in-memory``, ``dask[2x1]`` at least 1.6x faster than
  ``dask[1x1]``.
* ``dask[1x1] tasks`` / ``dask[2x1] tasks``: the persisted X, summed by one
  task per worker thread per evaluation (the path a fit falls back to when a
  worker is lost) instead of one call per worker to its actor.
* ``dask[1x1] persist=True`` / ``dask[2x1] persist=True``: X not persisted;
  ``fit(X, y, persist=True)`` reads the blocks from disk once inside the
  timed fit and keeps them for the fit's duration.

Group "fit LogisticRegression mnist x4 float32 dask" (the 2-worker target "on
data that does not fit in the cache"): MNIST's training rows tiled
``FASTSOFTMAX_BENCH_DASK_TILES`` times (default 4: 240000 x 784 float32,
752 MB, more than the 480 MiB L3 the VM reports and than any real Xeon's),
the same fit:

* ``in-memory[1 thread]`` / ``in-memory[2 threads]``: the NumPy fit, the
  kernels on 1 or 2 OpenMP threads (the machine's own scaling on this data);
* ``dask[1x1]`` / ``dask[2x1]``: the ``.npy`` stack of 8 x TILES blocks
  persisted on 1 or 2 single-threaded workers, actors.  Target:
  ``dask[2x1]`` at least 1.6x faster than ``dask[1x1]``.

Group "fit SoftmaxRegression mnist float32 dask" (``max_epochs=EPOCHS``,
``batch_size=128``, ``tol=None``): ``in-memory`` against the MNIST stack
persisted on 1 or 2 workers, the epochs run by the workers' actors (each
trains the blocks it holds, the weights handed along the shuffled block
order) or, ``tasks``, by a chain of one task per block.

Group "fit binary LogisticRegression mnist dask vs dask-ml" (digit parity,
no intercept, ``C=1``, on ``dask[1x1]``'s cluster): dask-ml's
``LogisticRegression(solver="lbfgs")`` with ``normalize=False`` (so both
minimise ``sum_i loss_i + ||w||^2 / (2 C)``) against fastsoftmax's fit, each
to its own convergence; ``extra_info`` holds both objective values (ours must
be at most dask-ml's).  Target: at least 10x faster.

Run: ``FASTSOFTMAX_DATA=... pytest benchmarks/test_bench_dask.py --benchmark-only``
(the figures are only meaningful on a quiet machine with at least 2 free cores).
"""

from __future__ import annotations

import collections
import os
import warnings

import numpy as np
import pytest
from benchutils import run

import fastsoftmax

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

MAX_ITER = 100
N_BLOCKS = 8
ROUNDS = int(os.environ.get("FASTSOFTMAX_BENCH_DASK_ROUNDS", "3"))
TILES = int(os.environ.get("FASTSOFTMAX_BENCH_DASK_TILES", "4"))
LARGE_GROUP = f"fit LogisticRegression mnist x{TILES} float32 dask"
EPOCHS = 5
SOFTMAX_GROUP = "fit SoftmaxRegression mnist float32 dask"


@pytest.fixture(scope="module", params=[1, 2], ids=["1x1", "2x1"])
def cluster_client(request):
    cluster = distributed.LocalCluster(n_workers=request.param, threads_per_worker=1,
                                       processes=True, dashboard_address=None)  # fmt: skip
    client = distributed.Client(cluster, set_as_default=False)
    yield request.param, client
    client.close()
    cluster.close()


def _quiet_fit(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X, y, **fit_params)


@pytest.fixture(scope="module")
def mnist_stack(tmp_path_factory, mnist):
    """MNIST's training rows written to disk as ``.npy`` stacks of ``N_BLOCKS`` row blocks."""
    path = tmp_path_factory.mktemp("mnist-stack")
    rows = -(-mnist.X.shape[0] // N_BLOCKS)
    da.to_npy_stack(path / "X", da.from_array(mnist.X, chunks=(rows, mnist.X.shape[1])))
    da.to_npy_stack(path / "y", da.from_array(mnist.y, chunks=rows))
    return path


@pytest.fixture(scope="module")
def mnist_tiled(mnist):
    """MNIST's training rows tiled ``TILES`` times along the rows (in memory)."""
    return np.tile(mnist.X, (TILES, 1)), np.tile(mnist.y, TILES)


@pytest.fixture(scope="module")
def mnist_tiled_stack(tmp_path_factory, mnist_tiled):
    """``mnist_tiled`` on disk as ``.npy`` stacks of ``N_BLOCKS * TILES`` row blocks."""
    X, y = mnist_tiled
    path = tmp_path_factory.mktemp("mnist-tiled-stack")
    rows = -(-X.shape[0] // (N_BLOCKS * TILES))
    da.to_npy_stack(path / "X", da.from_array(X, chunks=(rows, X.shape[1])))
    da.to_npy_stack(path / "y", da.from_array(y, chunks=rows))
    return path


def _from_disk(path):
    # mmap_mode=None: each worker reads its blocks into its own memory
    return da.from_npy_stack(path / "X", mmap_mode=None), da.from_npy_stack(path / "y", mmap_mode=None)


def _persisted(client, X, y):
    rows = -(-X.shape[0] // N_BLOCKS)
    Xd = client.persist(da.from_array(X, chunks=(rows, X.shape[1])))
    yd = client.persist(da.from_array(y, chunks=rows))
    with client.as_current():
        distributed.wait(distributed.futures_of([Xd, yd]))
    return Xd, yd


def _record_threads(benchmark):
    from threadpoolctl import threadpool_info

    benchmark.extra_info["threadpools"] = [
        (pool.get("internal_api"), pool.get("num_threads")) for pool in threadpool_info()
    ]


def test_fit_in_memory(benchmark, mnist):
    benchmark.group = "fit LogisticRegression mnist float32 dask"
    model = run(benchmark, lambda: _quiet_fit(fastsoftmax.LogisticRegression(max_iter=MAX_ITER),
                                              mnist.X, mnist.y),
                rounds=ROUNDS, impl="in-memory", kind="peer")  # fmt: skip
    benchmark.extra_info["n_iter"] = int(model.n_iter_[0])
    _record_threads(benchmark)


@pytest.mark.parametrize("path", ["actors", "tasks"])
@pytest.mark.parametrize("persist", [False, True], ids=["persisted", "persist=True"])
def test_fit_dask(benchmark, mnist, mnist_stack, cluster_client, persist, path, monkeypatch):
    n_workers, client = cluster_client
    if path == "tasks":  # the fallback: one task per worker thread per evaluation
        if persist:
            pytest.skip("the tasks' path: on the persisted X only")
        from fastsoftmax import _dask

        monkeypatch.setattr(_dask, "USE_ACTORS", False)
    benchmark.group = "fit LogisticRegression mnist float32 dask"
    Xd, yd = _from_disk(mnist_stack)
    with client.as_current():
        if not persist:  # the user keeps X on the cluster
            Xd, yd = client.persist([Xd, yd])
            distributed.wait(distributed.futures_of([Xd, yd]))
            where = client.who_has(distributed.futures_of(Xd))
            benchmark.extra_info["blocks_per_worker"] = sorted(
                collections.Counter(w for workers in where.values() for w in workers).values()
            )
        model = run(benchmark, lambda: _quiet_fit(
            fastsoftmax.LogisticRegression(max_iter=MAX_ITER), Xd, yd, persist=persist),
            rounds=ROUNDS, impl=f"dask[{n_workers}x1]" + (" persist=True" if persist else "")
            + (" tasks" if path == "tasks" else ""),
            kind="fastsoftmax")  # fmt: skip
    benchmark.extra_info["n_iter"] = int(model.n_iter_[0])
    reference = _quiet_fit(fastsoftmax.LogisticRegression(max_iter=MAX_ITER), mnist.X, mnist.y)
    benchmark.extra_info["max_coef_diff_vs_in_memory"] = float(
        np.abs(model.coef_ - reference.coef_).max()
    )
    _record_threads(benchmark)


def _warmup_fit(X, y):
    # imports, the kernels' first calls, the workers' pools: 2 iterations, outside the rounds
    return lambda: _quiet_fit(fastsoftmax.LogisticRegression(max_iter=2), X, y)


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_large_in_memory(benchmark, mnist_tiled, threads):
    benchmark.group = LARGE_GROUP
    X, y = mnist_tiled
    model = run(benchmark, lambda: _quiet_fit(fastsoftmax.LogisticRegression(max_iter=MAX_ITER),
                                              X, y),
                warmup=_warmup_fit(X, y), rounds=ROUNDS,
                impl=f"in-memory[{threads} thread{'s' if threads > 1 else ''}]", kind="peer",
                nbytes=X.nbytes)  # fmt: skip
    benchmark.extra_info["n_iter"] = int(model.n_iter_[0])
    _record_threads(benchmark)


def test_fit_large_dask(benchmark, mnist_tiled_stack, cluster_client):
    """The tiled stack persisted on the workers (actors), as ``test_fit_dask[persisted]``."""
    n_workers, client = cluster_client
    benchmark.group = LARGE_GROUP
    Xd, yd = _from_disk(mnist_tiled_stack)
    with client.as_current():
        Xd, yd = client.persist([Xd, yd])
        distributed.wait(distributed.futures_of([Xd, yd]))
        model = run(benchmark, lambda: _quiet_fit(
            fastsoftmax.LogisticRegression(max_iter=MAX_ITER), Xd, yd),
            warmup=_warmup_fit(Xd, yd), rounds=ROUNDS, impl=f"dask[{n_workers}x1]",
            kind="fastsoftmax", nbytes=int(Xd.nbytes))  # fmt: skip
        benchmark.extra_info["memory_per_worker"] = {
            name: info["metrics"]["memory"]
            for name, info in client.scheduler_info()["workers"].items()
        }
    benchmark.extra_info["n_iter"] = int(model.n_iter_[0])
    _record_threads(benchmark)


def _softmax():
    return fastsoftmax.SoftmaxRegression(max_epochs=EPOCHS, batch_size=128, tol=None,
                                         random_state=0)  # fmt: skip


def test_softmax_in_memory(benchmark, mnist):
    benchmark.group = SOFTMAX_GROUP
    model = run(benchmark, lambda: _softmax().fit(mnist.X, mnist.y), rounds=ROUNDS,
                impl="in-memory", kind="peer")  # fmt: skip
    benchmark.extra_info["train_accuracy"] = float(model.score(mnist.X, mnist.y))
    _record_threads(benchmark)


@pytest.mark.parametrize("path", ["actors", "tasks"])
def test_softmax_dask(benchmark, mnist, mnist_stack, cluster_client, path, monkeypatch):
    n_workers, client = cluster_client
    if path == "tasks":
        from fastsoftmax import _dask

        monkeypatch.setattr(_dask, "USE_ACTORS", False)
    benchmark.group = SOFTMAX_GROUP
    Xd, yd = _from_disk(mnist_stack)
    with client.as_current():
        Xd, yd = client.persist([Xd, yd])
        distributed.wait(distributed.futures_of([Xd, yd]))
        model = run(benchmark, lambda: _softmax().fit(Xd, yd), rounds=ROUNDS,
                    impl=f"dask[{n_workers}x1]" + (" tasks" if path == "tasks" else ""),
                    kind="fastsoftmax")  # fmt: skip
    benchmark.extra_info["train_accuracy"] = float(model.score(mnist.X, mnist.y))
    _record_threads(benchmark)


def _binary_objective(X, y, coef, C):
    """``sum_i loss_i + ||w||^2 / (2 C)`` for the binary model without intercept, in float64."""
    z = X.astype(np.float64) @ np.asarray(coef, np.float64).ravel()
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 / C * np.dot(coef.ravel(), coef.ravel()))


@pytest.mark.parametrize("impl", ["dask-ml", "fastsoftmax"])
def test_binary_vs_dask_ml(benchmark, mnist, cluster_client, impl):
    n_workers, client = cluster_client
    if n_workers != 1:
        pytest.skip("one cluster is enough for this comparison")
    benchmark.group = "fit binary LogisticRegression mnist dask vs dask-ml"
    y = (mnist.y % 2).astype(np.float64)
    X = mnist.X.astype(np.float64)  # dask-glm computes in float64: the same data for both
    Xd, yd = _persisted(client, X, y)
    if impl == "dask-ml":
        linear_model = pytest.importorskip("dask_ml.linear_model")

        def make():
            return linear_model.LogisticRegression(
                solver="lbfgs", C=1.0, fit_intercept=False, max_iter=MAX_ITER,
                solver_kwargs={"normalize": False},
            )  # fmt: skip
    else:

        def make():
            return fastsoftmax.LogisticRegression(C=1.0, fit_intercept=False, max_iter=MAX_ITER)

    with client.as_current():
        model = run(benchmark, lambda: _quiet_fit(make(), Xd, yd), warmup=False,
                    rounds=1 if impl == "dask-ml" else ROUNDS, impl=impl,
                    kind="fastsoftmax" if impl == "fastsoftmax" else "peer")  # fmt: skip
    benchmark.extra_info["objective"] = _binary_objective(X, y, model.coef_, 1.0)
    _record_threads(benchmark)
