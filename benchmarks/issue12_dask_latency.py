"""Where a Dask fit's time goes: the fixed costs of a fit and one objective evaluation's parts.

Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=/work/shared/data/mnist \\
        python benchmarks/issue12_dask_latency.py N_WORKERS [TILES] [REPEATS]

MNIST's training rows (float32, tiled ``TILES`` times along the rows: 4 gives
240000 x 784, 752 MB), in 8 x ``TILES`` row blocks persisted on a
``LocalCluster`` of ``N_WORKERS`` processes with 1 thread each.  Prints
medians over ``REPEATS`` (default 30) of:

* ``setup``: ``fit_data`` (the checked :class:`fastsoftmax._dask.Blocks`:
  the actors started with the blocks, which check and encode them), and
  what the first evaluation takes more than a later one;
* ``empty call``: an evaluation whose per-block function returns zeros
  (the round trip: coefficients out, one call per worker, sums back);
* ``kernel in a worker``: the per-block sums of each worker's blocks timed
  inside the worker (the slowest worker), no messages;
* ``evaluation``: a real evaluation (``Blocks.map_sum`` of the fit's
  per-block function), and the in-memory evaluation on 1 thread in this
  process for comparison;
* ``fit``: a whole ``LogisticRegression(max_iter=100).fit`` and its
  evaluations' count, so that fit / evaluations - evaluation is the
  client's own time per iteration (the L-BFGS step).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np


def _median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _zeros_like_sums(X, y_idx, sample_weight, coef, intercept):
    return np.zeros(1 + coef.size + np.size(intercept))


def _kernel_seconds_on_worker(keys, coef, intercept, repeats, dask_worker=None):
    """The per-block sums of the blocks ``keys`` held by this worker, timed inside it."""
    from fastsoftmax import _dask

    blocks = [dask_worker.data[key] for key in keys if key in dask_worker.data]
    if not blocks:
        return 0.0, 0.0
    y_idx = [np.zeros(b.shape[0], np.intp) for b in blocks]
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.thread_time()
        for X, y in zip(blocks, y_idx):
            _dask._logistic_block_sums(X, y, None, coef, intercept)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
    return statistics.median(times), statistics.median(cpu_times)


def main(n_workers, tiles=1, repeats=30):
    import dask.array as da
    import distributed
    from threadpoolctl import threadpool_info, threadpool_limits

    import fastsoftmax
    from fastsoftmax import _dask
    from fastsoftmax.datasets import load_mnist

    X, y = load_mnist(os.environ["FASTSOFTMAX_DATA"], download=False, dtype="float32",
                      return_X_y=True)[:2]  # fmt: skip
    X, y = np.ascontiguousarray(np.tile(X, (tiles, 1))), np.tile(y, tiles)
    n_blocks = 8 * tiles
    rows = -(-X.shape[0] // n_blocks)
    fastsoftmax.set_num_threads(1)
    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)  # fmt: skip
    client = distributed.Client(cluster)
    with threadpool_limits(1):
        print("threadpools:", [(p.get("internal_api"), p.get("num_threads"))
                               for p in threadpool_info()])  # fmt: skip
        print(f"X {X.shape} {X.dtype} ({X.nbytes / 1e6:.0f} MB), {n_blocks} blocks, "
              f"{n_workers} worker(s) x 1 thread")  # fmt: skip
        # as a user holds it: an .npy stack on disk, read by the workers and persisted there
        stack = tempfile.mkdtemp(prefix="issue12-stack-")
        da.to_npy_stack(os.path.join(stack, "X"), da.from_array(X, chunks=(rows, X.shape[1])))
        da.to_npy_stack(os.path.join(stack, "y"), da.from_array(y, chunks=rows))
        Xd = da.from_npy_stack(os.path.join(stack, "X"), mmap_mode=None).persist()
        yd = da.from_npy_stack(os.path.join(stack, "y"), mmap_mode=None).persist()
        distributed.wait([Xd, yd])
        model = fastsoftmax.LogisticRegression(max_iter=100)
        coef = np.zeros((10, X.shape[1]), np.float32)
        intercept = np.zeros(10, np.float32)

        def setup():
            data = _dask.fit_data(model, Xd, yd, None)[0]
            data.stop_actors()

        print(f"setup (fit_data, the actors started): {1e3 * _median_seconds(setup, 5):.1f} ms")
        data = _dask.fit_data(model, Xd, yd, None)[0]
        start = time.perf_counter()
        data.map_sum(_zeros_like_sums, coef, intercept)
        first = time.perf_counter() - start
        empty = _median_seconds(lambda: data.map_sum(_zeros_like_sums, coef, intercept), repeats)
        print(f"first evaluation's extra: {1e3 * (first - empty):.1f} ms")
        print(f"empty call: {1e3 * empty:.2f} ms")
        keys = {}
        for worker, blocks in data._groups:
            keys.setdefault(worker, []).extend(data.x_parts[i].key for i in blocks)
        kernel, kernel_cpu = max(
            client.run(_kernel_seconds_on_worker, keys[w], coef, intercept, 5, workers=[w])[w]
            for w in keys
        )
        # the CPU time (of the worker's thread) hardly changes with other processes on the cores
        print(f"kernel in a worker (slowest): {1e3 * kernel:.2f} ms, "
              f"its thread's CPU time {1e3 * kernel_cpu:.2f} ms")  # fmt: skip
        evaluation = _median_seconds(
            lambda: data.map_sum(_dask._logistic_block_sums, coef, intercept), repeats
        )
        print(f"evaluation: {1e3 * evaluation:.2f} ms "
              f"(messages and waiting {1e3 * (evaluation - kernel):.2f} ms)")  # fmt: skip
        data.stop_actors()
        y_idx = y.astype(np.intp)
        cpu_start = time.thread_time()
        in_memory = _median_seconds(
            lambda: _dask._logistic_block_sums(X, y_idx, None, coef, intercept), 5
        )
        print(f"in-memory evaluation (1 thread, this process): {1e3 * in_memory:.2f} ms, "
              f"CPU time {1e3 * (time.thread_time() - cpu_start) / 5:.2f} ms")  # fmt: skip
        counted = []
        original = _dask.Blocks.map_sum

        def counting(self, *args):
            counted.append(1)
            return original(self, *args)

        _dask.Blocks.map_sum = counting
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            fitted = fastsoftmax.LogisticRegression(max_iter=100).fit(Xd, yd)
            fit = time.perf_counter() - start
        _dask.Blocks.map_sum = original
        n_eval = len(counted)
        print(f"fit: {fit:.3f} s, {fitted.n_iter_[0]} iterations, {n_eval} evaluations, "
              f"{1e3 * fit / n_eval:.2f} ms per evaluation; the client's own time per "
              f"evaluation ~ {1e3 * (fit / n_eval - evaluation):.2f} ms")  # fmt: skip
    client.close()
    cluster.close()
    shutil.rmtree(stack, ignore_errors=True)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
