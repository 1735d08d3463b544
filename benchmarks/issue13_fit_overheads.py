"""Before/after of the fit overheads (issue 13): 'before' = the NumPy screen and np.unique
(exactly the previous code path), 'after' = the compiled screen and the counting encoder.
Interleaved rounds, medians; the peer is np.copyto of X in the same run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_fit_overheads.py [threads=1] [rounds=7]

(The early-stopping split's before/after needs the previous commit: run
``SoftmaxRegression(max_epochs=1, batch_size=128, early_stopping=True, tol=None)``
on both, against ``np.copyto`` of X.)
"""
import time, sys, warnings, numpy as np
import fastsoftmax
from fastsoftmax import SoftmaxRegression, LogisticRegression, _validation
from fastsoftmax.estimators import _base
from fastsoftmax.datasets import load_mnist
from threadpoolctl import threadpool_limits, threadpool_info
X, y, Xt, yt = load_mnist(__import__("os").environ["FASTSOFTMAX_DATA"], download=False, dtype="uint8", return_X_y=True)
X = X.astype(np.float32) / np.float32(255)
threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
fastsoftmax.set_num_threads(threads)
kernel = _validation._compiled_all_finite(); encoder = _base._unique_small_ints
def mode(after):
    _validation._finite_kernel = kernel if after else False
    _base._unique_small_ints = encoder if after else (lambda y: None)
out = np.empty_like(X)
cases = {
  "np.copyto(X) [peer]": lambda: np.copyto(out, X),
  "screen of X": lambda: _validation.all_finite(X),
  "SoftmaxRegression(max_epochs=1, batch_size=128).fit": lambda: SoftmaxRegression(max_epochs=1, batch_size=128, random_state=0).fit(X, y),
  "SoftmaxRegression(max_epochs=1, batch_size=128, early_stopping=True).fit": lambda: SoftmaxRegression(max_epochs=1, batch_size=128, early_stopping=True, tol=None, random_state=0).fit(X, y),
  "LogisticRegression().fit": lambda: LogisticRegression().fit(X, y),
}
times = {(k, a): [] for k in cases for a in (0, 1)}
with threadpool_limits(threads), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    SoftmaxRegression(max_epochs=1).fit(X[:500], y[:500])
    for r in range(rounds):
        for k, f in cases.items():
            if k.startswith("Logistic") and r >= 3: continue
            for a in ((0, 1) if r % 2 else (1, 0)):
                mode(a); t = time.perf_counter(); f(); times[(k, a)].append(time.perf_counter() - t)
mode(1)
peer = np.median(times[("np.copyto(X) [peer]", 1)] + times[("np.copyto(X) [peer]", 0)])
print(f"threads={threads}, rounds={rounds}, loadavg={np.round(__import__('os').getloadavg(),2).tolist()}")
for k in cases:
    b, a = np.median(times[(k, 0)]) * 1e3, np.median(times[(k, 1)]) * 1e3
    print(f"{k:55s} before {b:8.1f} ms ({b/peer/1e3:5.2f} x copyto)  after {a:8.1f} ms ({a/peer/1e3:5.2f} x copyto)  after/before {a/b:.2f}")
print([(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"]) for p in threadpool_info()])
