"""
Speed of the backends on small data
===================================

Every kernel exists in each backend of :func:`fastsoftmax.backends`, with the
same results. This times the fused loss and gradient of softmax regression,
:func:`~fastsoftmax.softmax_cross_entropy_grad`, on the digits training set
(float32, 64 features, 10 classes) in each backend on one thread, and
scikit-learn's own loss-and-gradient of the same objective when it is
available. The figures are those of the machine that built these pages, at
a tiny size where call overhead counts; the benchmark suite
(``benchmarks/README.md``) measures MNIST-sized work properly.
"""

import timeit

import matplotlib.pyplot as plt
import numpy as np

import fastsoftmax as fs

X, y, _, _ = fs.datasets.load_digits(return_X_y=True)
n_classes = 10
rng = np.random.default_rng(0)
W = 0.01 * rng.standard_normal((X.shape[1], n_classes)).astype(np.float32)
b = np.zeros(n_classes, dtype=np.float32)
fs.set_num_threads(1)


def best_time(function, budget=0.2):
    """Best time of one call, in seconds, over about `budget` seconds of calls."""
    function()  # warm-up: numba compiles here
    number = max(1, int(0.02 / min(timeit.timeit(function, number=1), 0.02)))
    repeat = max(3, int(budget / (number * timeit.timeit(function, number=1)) + 1))
    return min(timeit.repeat(function, number=number, repeat=min(repeat, 20))) / number


timings = {}
for backend in fs.backends():
    X_part, y_part = (X, y) if backend != "naive" else (X[:200], y[:200])  # Python loops
    seconds = best_time(
        lambda: fs.softmax_cross_entropy_grad(X_part, W, b, y_part, backend=backend)
    )
    label = backend if X_part is X else f"{backend} ({len(X_part)} rows, scaled)"
    timings[label] = seconds * len(X) / len(X_part)  # per full training set

try:
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss
except ImportError:  # a private scikit-learn API: skip it when it moves
    pass
else:
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=n_classes), fit_intercept=True)
    coef = np.hstack([W.T, b[:, None]]).astype(np.float32)
    timings["scikit-learn"] = best_time(
        lambda: loss.loss_gradient(coef, X, y.astype(np.float32), n_threads=1)
    )

for name, seconds in timings.items():
    print(f"{name:>26}: {seconds * 1e3:8.3f} ms")

fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
names = list(timings)
ax.barh(names, [timings[n] * 1e3 for n in names])
ax.set_xscale("log")
ax.invert_yaxis()
ax.set_xlabel("ms per loss + gradient on the digits training set (log scale)")
ax.set_title("softmax_cross_entropy_grad, one thread")
plt.show()
