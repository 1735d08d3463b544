"""Two threads against one (issue 13, target 5): one shuffled SGD epoch of the cython
``train_epoch`` kernel on MNIST (60000 x 784, 10 classes) at batch 32 and 128, float32 and
uint8 X, on 1 and on 2 threads, in one process: interleaved rounds, medians of wall time
(the 2-thread epoch runs the feature split of ``fs_epoch_split.h``), plus the full-batch
``softmax_ce_sums`` pass as a peer.  Each round draws a new permutation (outside the timing).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_epoch_threads.py [rounds=7] [threads=2]
"""
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import fastsoftmax
from benchutils import mnist_train_arrays
from fastsoftmax._backends import cython as cy

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
many = int(sys.argv[2]) if len(sys.argv) > 2 else 2
X8, X32, y = mnist_train_arrays()
n, d = X32.shape
C = 10
rng = np.random.default_rng(0)
orders = [rng.permutation(n) for _ in range(3)]


def full_pass(X):
    W = np.zeros((C, d), np.float32)
    b = np.zeros(C, np.float32)
    gW, gb = np.empty_like(W), np.empty_like(b)
    return lambda k: cy.softmax_ce_sums(X, W, b, y, None, gW, gb)


def epoch(X, batch):
    W = np.zeros((d, C), np.float32)  # the epoch kernel's contract: W (d, C)
    b = np.zeros(C, np.float32)
    lr = 0.1 if X.dtype == np.float32 else 0.1 / 255**2
    return lambda k: cy.train_epoch(X, y, None, W, b, orders[k % len(orders)], batch, 0.0, True,
                                    "sgd", {}, lr, 0, {})  # fmt: skip


work = {
    "full pass f32": full_pass(X32),
    "epoch B=32 f32": epoch(X32, 32),
    "epoch B=128 f32": epoch(X32, 128),
    "epoch B=32 u8": epoch(X8, 32),
    "epoch B=128 u8": epoch(X8, 128),
}
counts = (1, many)
wall = {(name, nt): [] for name in work for nt in counts}
with threadpool_limits(many):
    for k in range(rounds + 1):  # round 0 warms up
        for name, f in work.items():
            for nt in counts:
                fastsoftmax.set_num_threads(nt)
                t0 = time.perf_counter()
                f(k)
                if k:
                    wall[name, nt].append(time.perf_counter() - t0)
    info = threadpool_info()
print(f"rounds={rounds}, loadavg={np.round(os.getloadavg(), 2).tolist()}")
for name in work:
    one, more = np.median(wall[name, 1]), np.median(wall[name, many])
    print(f"{name:18s} 1 thread {one * 1e3:7.2f} ms   {many} threads {more * 1e3:7.2f} ms   "
          f"{one / more:5.2f}x")
print([(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"]) for p in info])
