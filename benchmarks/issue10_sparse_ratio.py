"""Issue 10 target 3 in one process: the sparse fused gradient, cython against numpy, 1 and 2 threads.

The public ``softmax_cross_entropy_grad`` on the Zipf corpus of
``test_bench_sparse.py`` (or, with ``debian``, the Debian TF-IDF training
matrix of ``debian_corpus.py`` and its 58 classes), the contenders timed in
interleaved rounds (``benchutils.interleaved_rounds``) so that a load spike
hits all of them alike (the order turning each round).  Prints per contender the wall median and minimum
and the process CPU time (all threads) per call, the ratios numpy / cython
(1 thread) and cython 1 thread / 2 threads (wall medians and minima), and
threadpoolctl's summary.  (Session 6's 2-thread pass, per-thread accumulators,
is gone since session 8: compare against an older tree in another process.)
Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \\
        python benchmarks/issue10_sparse_ratio.py [zipf|debian] [rounds]

``REGISTER_ROWS=7`` (default 4) also times the register-held gather and scatter (see
``_sparse_kernels._set_register_rows``).  ``OMP_WAIT_POLICY=passive`` keeps a waiting OpenMP thread off the CPU, so that
the CPU time is the work done (on a loaded machine the 2-thread wall time
says little; work(2 threads) / work(1 thread) near 1 means no extra work).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _corpus(name):
    if name == "debian":
        from debian_corpus import debian_corpus, tfidf_split

        X, _, y, _, vec = tfidf_split(*debian_corpus())
        return X, y, len(vec.classes_)
    from test_bench_sparse import C, zipf_corpus

    X, y = zipf_corpus()
    return X, y, C


def main(corpus="zipf", rounds=21):
    from benchutils import interleaved_rounds
    from threadpoolctl import threadpool_info, threadpool_limits

    import fastsoftmax

    X, y, C = _corpus(corpus)
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((X.shape[1], C)) * 0.01).astype(np.float32)
    b = np.zeros(C, np.float32)

    from fastsoftmax import _sparse_kernels

    default = _sparse_kernels._set_register_rows(int(os.environ.get("REGISTER_ROWS", 4)))

    def case(backend, threads):
        def call():
            fastsoftmax.set_num_threads(threads)
            fastsoftmax.softmax_cross_entropy_grad(X, W, b, y, backend=backend)

        return call

    cases = {"numpy 1": case("numpy", 1), "cython 1": case("cython", 1),
             "cython 2": case("cython", 2)}  # fmt: skip
    process = {k: [] for k in cases}
    with threadpool_limits(1, user_api="blas"):
        for f in cases.values():  # warm-up
            f()
        items = list(cases.items())
        for r in range(rounds):
            # the order turns each round: the case after numpy's finds colder caches
            for k, f in items[r % len(items):] + items[: r % len(items)]:
                c0 = time.process_time()
                cpu, wall = interleaved_rounds({k: f}, 1)
                process[k].append(time.process_time() - c0)
                process.setdefault(k + " wall", []).append(wall[k][0])
        info = [(i["internal_api"], i.get("version"), i["num_threads"]) for i in threadpool_info()]
    _sparse_kernels._set_register_rows(default)
    stats = {}
    for k in cases:
        wall = np.array(process[k + " wall"]) * 1e3
        stats[k] = (np.median(wall), wall.min(), np.median(process[k]) * 1e3)
        print(f"{k} thread(s): wall median {stats[k][0]:.2f} ms, min {stats[k][1]:.2f} ms, "
              f"process CPU median {stats[k][2]:.2f} ms")  # fmt: skip
    med = {k: v[0] for k, v in stats.items()}
    low = {k: v[1] for k, v in stats.items()}
    print(f"corpus={corpus} shape={X.shape} nnz={X.nnz} classes={C} rounds={rounds} "
          f"loadavg={os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"numpy/cython 1 thread: {med['numpy 1'] / med['cython 1']:.2f}x (medians), "
          f"{low['numpy 1'] / low['cython 1']:.2f}x (minima)")  # fmt: skip
    print(f"cython 1 thread / 2 threads: {med['cython 1'] / med['cython 2']:.2f}x (medians), "
          f"{low['cython 1'] / low['cython 2']:.2f}x (minima); CPU work 2 threads / 1 thread "
          f"{stats['cython 2'][2] / stats['cython 1'][2]:.2f}")  # fmt: skip
    print(f"threadpool_info: {info}")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["zipf"]), *(int(a) for a in sys.argv[2:3]))
