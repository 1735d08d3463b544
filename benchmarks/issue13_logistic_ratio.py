"""LogisticRegression(max_iter=100) on MNIST against scikit-learn's (issue 13, target 4), in one
process, interleaved rounds, medians of wall and CPU time (process time: sklearn's BLAS may use
other threads when allowed; here every pool is limited to `threads`), the coefficient
agreement, and where fastsoftmax's fit time goes (its softmax_ce_sums calls, timed by a wrapper).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_logistic_ratio.py [threads=1] [rounds=3]
"""
import os
import sys
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression
from threadpoolctl import threadpool_info, threadpool_limits

import fastsoftmax
from fastsoftmax._backends import cython as cy
from fastsoftmax.datasets import load_mnist

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
X8, y, _, _ = load_mnist(os.environ["FASTSOFTMAX_DATA"], download=False, dtype="uint8",
                         return_X_y=True)  # fmt: skip
X = X8.astype(np.float32) / np.float32(255)
fastsoftmax.set_num_threads(threads)

kernel_time = [0.0, 0]
_sums = cy.softmax_ce_sums


def timed_sums(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _sums(*args, **kwargs)
    finally:
        kernel_time[0] += time.perf_counter() - t0
        kernel_time[1] += 1


def fit_fastsoftmax():
    return fastsoftmax.LogisticRegression(max_iter=100).fit(X, y)


def fit_sklearn():
    # imported above, before threadpool_limits: a BLAS loaded later (scipy's) is not limited
    return SklearnLogisticRegression(max_iter=100).fit(X, y)


cases = {"sklearn [peer]": fit_sklearn, "fastsoftmax[cython]": fit_fastsoftmax}
wall = {k: [] for k in cases}
cpu = {k: [] for k in cases}
models = {}
with threadpool_limits(threads), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    info = [(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"])
            for p in threadpool_info()]  # fmt: skip
    fit_fastsoftmax()
    for r in range(rounds):
        for k, f in cases.items():
            kernel_time[:] = [0.0, 0]
            cy.softmax_ce_sums = timed_sums
            t0, c0 = time.perf_counter(), time.process_time()
            models[k] = f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            cy.softmax_ce_sums = _sums
            if k.startswith("fastsoftmax"):
                share = kernel_time[0] / wall[k][-1]
                print(f"round {r}: fastsoftmax fit {wall[k][-1]:.2f} s, {kernel_time[1]} "
                      f"softmax_ce_sums calls, {kernel_time[0]:.2f} s ({share:.0%}) in them")
print(f"threads={threads}, rounds={rounds}, loadavg={np.round(os.getloadavg(), 2).tolist()}")
for k in cases:
    print(f"{k:22s} wall {np.median(wall[k]):7.2f} s  cpu {np.median(cpu[k]):7.2f} s")
print(f"ratio sklearn / fastsoftmax: wall {np.median(wall['sklearn [peer]']) / np.median(wall['fastsoftmax[cython]']):.2f}x, "
      f"cpu {np.median(cpu['sklearn [peer]']) / np.median(cpu['fastsoftmax[cython]']):.2f}x")  # fmt: skip
a, b = models["fastsoftmax[cython]"], models["sklearn [peer]"]
print("max |coef diff| / max |coef|:", float(np.abs(a.coef_ - b.coef_).max() / np.abs(b.coef_).max()),
      " n_iter", a.n_iter_, b.n_iter_,
      " predictions agree", float(np.mean(a.predict(X) == b.predict(X))))  # fmt: skip
print(info)
