"""Where the compiled epoch's extra time goes (issue 13, target 2): one SGD epoch of the
cython ``train_epoch`` at batch 32, 128 and 60000 (one minibatch), float32 and uint8 X,
each with the rows in a shuffled order and in their order, against the full-batch
``softmax_ce_sums`` pass of the same X; one thread, interleaved rounds, medians of thread
CPU time.  In order, the epoch minus the full pass is the per-minibatch work; shuffled at
batch 60000, it is the cost of reading the rows in a shuffled order.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_epoch_order.py [rounds=5]
"""
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import fastsoftmax
from benchutils import mnist_train_arrays
from fastsoftmax._backends import cython as cy

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
X8, X32, y = mnist_train_arrays()
n, d = X32.shape
C = 10
fastsoftmax.set_num_threads(1)
shuffled, in_order = np.random.default_rng(0).permutation(n), np.arange(n)


def full_pass(X):
    W, b = np.zeros((C, d), np.float32), np.zeros(C, np.float32)
    gW, gb = np.empty_like(W), np.empty_like(b)
    return lambda: cy.softmax_ce_sums(X, W, b, y, None, gW, gb)


def epoch(X, batch, order):
    W, b = np.zeros((d, C), np.float32), np.zeros(C, np.float32)
    lr = 0.1 if X.dtype == np.float32 else 0.1 / 255**2
    return lambda: cy.train_epoch(X, y, None, W, b, order, batch, 0.0, True, "sgd", {}, lr, 0, {})


cases = {"full pass f32": full_pass(X32), "full pass u8": full_pass(X8)}
for batch in (32, 128, 60000):
    for name, order in (("shuffled", shuffled), ("in order", in_order)):
        for X in (X32, X8):
            kind = "f32" if X.dtype == np.float32 else "u8"
            cases[f"epoch B={batch} {name} {kind}"] = epoch(X, batch, order)
times = {k: [] for k in cases}
with threadpool_limits(1):
    for f in cases.values():
        f()
    for _ in range(rounds):
        for k, f in cases.items():
            t = time.thread_time()
            f()
            times[k].append(time.thread_time() - t)
print(f"rounds={rounds}, loadavg={np.round(os.getloadavg(), 2).tolist()}")
peer = {kind: np.median(times[f"full pass {kind}"]) for kind in ("f32", "u8")}
for k, v in times.items():
    m = np.median(v)
    print(f"{k:30s} {m * 1e3:7.2f} ms  {m / peer[k.split()[-1]]:5.2f} x its full pass")
print([(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"])
       for p in threadpool_info()])  # fmt: skip
