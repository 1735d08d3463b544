"""Cold compile of what a default fit needs, numba backend, in this fresh process (issue 13).

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/issue13_numba_cold.py softmax   # or logistic

The fit: 300 x 20 float32 rows of 3 classes (``classes=N`` as the last argument: N).  The
kernels compile the register tiles of their class count only, so 3 classes
(4x1 tiles) and 10 (2x10) are the two common cases.
A second argument imports fastsoftmax from that source tree instead of the
installed one (e.g. ``git archive OLD fastsoftmax | tar -x -C DIR`` plus the
built ``*.so`` copied in) for a before/after pair.  Reports wall time and the
main thread's CPU time (robust to a busy machine: numba compiles on it).
"""
import sys, time
classes = int(sys.argv.pop()[8:]) if sys.argv[-1].startswith("classes=") else 3
if len(sys.argv) > 2:
    sys.meta_path = [f for f in sys.meta_path if "skbc" not in type(f).__module__.lower()
                     and "editable" not in type(f).__name__.lower()]
    sys.path.insert(0, sys.argv[2])
w0, c0 = time.perf_counter(), time.thread_time()
import numpy as np, warnings
import fastsoftmax
from fastsoftmax import SoftmaxRegression, LogisticRegression
assert len(sys.argv) < 3 or fastsoftmax.__file__.startswith(sys.argv[2]), fastsoftmax.__file__
fastsoftmax.set_backend("numba")
rng = np.random.default_rng(0)
X = rng.random((300, 20), dtype=np.float32); y = rng.integers(0, classes, 300)
warnings.simplefilter("ignore")
w1, c1 = time.perf_counter(), time.thread_time()
est = (SoftmaxRegression() if sys.argv[1] == "softmax" else LogisticRegression()).fit(X, y)
est.predict_proba(X)
print(f"{sys.argv[1]:8s} C={classes} fit+predict_proba: wall {time.perf_counter()-w1:6.2f} s, main-thread CPU {time.thread_time()-c1:6.2f} s; import {w1-w0:.2f} s")
