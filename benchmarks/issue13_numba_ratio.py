"""numba against cython (issue 13, target 6): the full-batch fused pass ``softmax_ce_sums``
(float32, uint8 and float64 X) and one shuffled SGD epoch of ``train_epoch`` (B=32 and
B=128, float32 and uint8 X) on MNIST, both backends in one process, interleaved rounds,
medians of thread CPU time (the machine is shared) and of wall time.  The same
permutation feeds both backends' epochs of a round.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_numba_ratio.py [threads=1] [rounds=7] [cases=all]

``cases`` is a comma-separated list of substrings of the case names (e.g. ``pass``).
With threads > 1 the CPU column counts the calling thread only: read the wall column
(numba's ``train_epoch`` is serial).
"""
import os
import sys
import time
import warnings

import numpy as np
from benchutils import interleaved_rounds
from threadpoolctl import threadpool_info, threadpool_limits

import fastsoftmax
from fastsoftmax._backends import cython as cy
from fastsoftmax._backends import numba as nb
from fastsoftmax.datasets import load_mnist

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else [""]
X8, y, _, _ = load_mnist(os.environ["FASTSOFTMAX_DATA"], download=False, dtype="uint8",
                         return_X_y=True)  # fmt: skip
X32 = X8.astype(np.float32) / np.float32(255)
X64 = X32.astype(np.float64)
y = y.astype(np.intp)
n, d = X32.shape
C = 10
fastsoftmax.set_num_threads(threads)
rng = np.random.default_rng(0)
order = rng.permutation(n)


def full_pass(backend, X):
    dtype = np.float64 if X.dtype == np.float64 else np.float32
    W = (0.01 * np.random.default_rng(1).standard_normal((C, d))).astype(dtype)
    b = np.zeros(C, dtype)
    gW, gb = np.empty_like(W), np.empty_like(b)
    return lambda: backend.softmax_ce_sums(X, W, b, y, None, gW, gb)


def epoch(backend, X, batch):
    W = np.zeros((d, C), np.float32)  # the epoch kernel's contract: W (d, C)
    b = np.zeros(C, np.float32)
    lr = 0.1 if X.dtype == np.float32 else 0.1 / 255**2
    return lambda: backend.train_epoch(X, y, None, W, b, order, batch, 0.0, True, "sgd", {}, lr,
                                       0, {})  # fmt: skip


pairs = {
    "full pass f32": lambda be: full_pass(be, X32),
    "full pass u8": lambda be: full_pass(be, X8),
    "full pass f64": lambda be: full_pass(be, X64),
    "epoch B=32 f32": lambda be: epoch(be, X32, 32),
    "epoch B=128 f32": lambda be: epoch(be, X32, 128),
    "epoch B=32 u8": lambda be: epoch(be, X8, 32),
    "epoch B=128 u8": lambda be: epoch(be, X8, 128),
}
pairs = {k: v for k, v in pairs.items() if any(w in k for w in wanted)}
cases = {}
for name, make in pairs.items():
    cases[(name, "cython")] = make(cy)
    cases[(name, "numba")] = make(nb)

with threadpool_limits(threads), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    for f in cases.values():  # warm-up (numba compiles or loads its cache here)
        f()
    print(f"warm-up (compile or cache load) {time.perf_counter() - t0:.1f} s")
    cpu, wall = interleaved_rounds(cases, rounds)
print(f"threads={threads}, rounds={rounds}, loadavg={np.round(os.getloadavg(), 2).tolist()}")
print(f"{'case':18s} {'cython cpu':>11s} {'numba cpu':>10s} {'ratio':>6s}   "
      f"{'cython wall':>11s} {'numba wall':>10s} {'ratio':>6s}")  # fmt: skip
for name in pairs:
    cc, cn = np.median(cpu[name, "cython"]), np.median(cpu[name, "numba"])
    wc, wn = np.median(wall[name, "cython"]), np.median(wall[name, "numba"])
    print(f"{name:18s} {cc * 1e3:8.1f} ms {cn * 1e3:7.1f} ms {cn / cc:5.2f}x   "
          f"{wc * 1e3:8.1f} ms {wn * 1e3:7.1f} ms {wn / wc:5.2f}x")
print([(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"])
       for p in threadpool_info()])  # fmt: skip
