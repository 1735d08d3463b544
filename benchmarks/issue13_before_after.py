"""Before/after of the Python-level fused pass and epoch (issue 13): `python benchmarks/issue13_before_after.py DIR` imports fastsoftmax from DIR (e.g. main's wheel unpacked), without DIR the installed one; run both alternately.  Thread-CPU medians of 9 rounds, MNIST, one thread."""
import sys, os, time, numpy as np
if len(sys.argv) > 1:
    sys.meta_path = [f for f in sys.meta_path if "skbc" not in type(f).__module__.lower() and "editable" not in type(f).__name__.lower()]
    sys.path.insert(0, sys.argv[1])
import fastsoftmax
from fastsoftmax._backends import cython as cy
from fastsoftmax.datasets import load_mnist
assert len(sys.argv) < 2 or fastsoftmax.__file__.startswith(sys.argv[1])
X8, y, _, _ = load_mnist(os.environ["FASTSOFTMAX_DATA"], download=False, dtype="uint8", return_X_y=True)
X32 = X8.astype(np.float32) / np.float32(255); X64 = X32.astype(np.float64); y = y.astype(np.intp); n, d = X32.shape; C = 10
fastsoftmax.set_num_threads(1)
rng = np.random.default_rng(2); W0 = rng.standard_normal((C, d)) * 0.01
def full(X, dt):
    WT = W0.astype(dt); b = np.zeros(C, dt); gW = np.empty_like(WT); gb = np.empty_like(b)
    return lambda: cy.softmax_ce_sums(X, WT, b, y, None, gW, gb)
def ep(X, B):
    W = np.zeros((d, C), np.float32); bb = np.zeros(C, np.float32); r = np.random.default_rng(0)
    return lambda: cy.train_epoch(X, y, None, W, bb, r.permutation(n), B, 0.0, True, "sgd", {}, 0.1 if X.dtype == np.float32 else 0.1 / 255**2, 0, {})
from fastsoftmax import _validation
cases = {"all_finite f32": lambda: _validation.all_finite(X32), "full f32": full(X32, np.float32), "full u8": full(X8, np.float32), "full f64": full(X64, np.float64),
         "epoch B=128 f32": ep(X32, 128), "epoch B=32 f32": ep(X32, 32), "epoch B=128 u8": ep(X8, 128)}
for f in cases.values(): f()
t = {k: [] for k in cases}
for r in range(9):
    for k, f in cases.items():
        c0 = time.thread_time(); f(); t[k].append(time.thread_time() - c0)
print("main " if len(sys.argv) > 1 else "branch", "  ".join(f"{k} {np.median(v)*1e3:.1f}" for k, v in t.items()))
