"""A synthetic many-class task, available offline, for the many-class benchmarks (issue 14).

Generator (fixed seed): ``n_classes`` class centres ``mu_c ~ N(0, I_d)``;
class frequencies follow Zipf's law, ``pi_c ~ 1 / (c + 1)^zipf`` (like the
words of a vocabulary); a row of class ``c`` is ``x = mu_c + noise * N(0,
I_d)``, float32.  With shared isotropic noise the best classifier is linear,
``W_c = mu_c / noise^2``, ``b_c = log pi_c - |mu_c|^2 / (2 noise^2)``, so a
linear softmax model can learn it, and a trained model is peaked: most of a
row's classes get probabilities far below float32's epsilon, which is what
the skipping of the tiled kernels exploits.

``python benchmarks/many_class_task.py`` trains softmax regression on it with
minibatch SGD through the fused kernel, with the skipping on and off, and
prints the held-out accuracy and the CPU time of each epoch (the figures of
benchmarks/README.md, "Many classes").
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SEED = 14


def make_task(n_rows, n_classes, n_features, *, noise=3.0, zipf=1.0, seed=SEED, centres=None):
    """``(X float32 (n, d), y intp (n,), centres (C, d), log_prior (C,))`` of the generator above.

    Pass the ``centres`` of an earlier call (with another ``seed``) to draw more
    rows of the same task (e.g. a test set).
    """
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = np.random.default_rng(SEED).standard_normal((n_classes, n_features))
        centres = centres.astype(np.float32)
    prior = 1.0 / np.arange(1, n_classes + 1) ** zipf
    prior /= prior.sum()
    y = rng.choice(n_classes, size=n_rows, p=prior).astype(np.intp)
    X = centres[y] + np.float32(noise) * rng.standard_normal((n_rows, n_features), np.float32)
    return X, y, centres, np.log(prior)


def one_pass_weights(X, y, n_classes, *, noise=3.0, shrink=1.0):
    """The linear model of one pass over the data: class means and frequencies plugged into
    the Bayes rule above (classes never seen get the mean of all rows).  ``(coef (C, d), b)``."""
    d = X.shape[1]
    sums = np.zeros((n_classes, d))
    np.add.at(sums, y, X)
    counts = np.bincount(y, minlength=n_classes).astype(float)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], X.mean(axis=0))
    means *= shrink
    log_prior = np.log((counts + 0.5) / (counts.sum() + 0.5 * n_classes))
    coef = means / noise**2
    intercept = log_prior - 0.5 * np.sum(means * means, axis=1) / noise**2
    return coef.astype(np.float32), intercept.astype(np.float32)


def accuracy(X, y, coef, intercept, block=4096):
    right = 0
    for a in range(0, X.shape[0], block):
        right += int(np.sum(np.argmax(X[a : a + block] @ coef.T + intercept, axis=1) == y[a : a + block]))
    return right / X.shape[0]


def train_sgd(X, y, n_classes, *, epochs, batch_size=1024, lr=0.5, skip_negligible=True,
              backend="cython", seed=0):  # fmt: skip
    """Minibatch SGD on the mean cross-entropy from zero weights, through the kernel
    ``softmax_ce_sums`` of ``backend`` with the given skipping.  Returns ``(coef, b, seconds)``
    (the CPU seconds of each epoch)."""
    from fastsoftmax._backends import get_module

    kernel = get_module(backend).softmax_ce_sums
    rng = np.random.default_rng(seed)
    coef = np.zeros((n_classes, X.shape[1]), np.float32)
    intercept = np.zeros(n_classes, np.float32)
    coef_grad, intercept_grad = np.empty_like(coef), np.empty_like(intercept)
    seconds = []
    for _ in range(epochs):
        start = time.process_time()  # CPU seconds: the machine may be shared
        order = rng.permutation(X.shape[0])
        for a in range(0, X.shape[0], batch_size):
            rows = np.sort(order[a : a + batch_size])
            _, total = kernel(X[rows], coef, intercept, y[rows], None, coef_grad, intercept_grad,
                              skip_negligible=skip_negligible)  # fmt: skip
            coef -= np.float32(lr / total) * coef_grad
            intercept -= np.float32(lr / total) * intercept_grad
        seconds.append(time.process_time() - start)
    return coef, intercept, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10000)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--train", type=int, default=60000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--noise", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--backend", default="cython")
    args = parser.parse_args(argv)
    X, y, centres, _ = make_task(args.train, args.classes, args.features, noise=args.noise)
    X_test, y_test, _, _ = make_task(args.test, args.classes, args.features, noise=args.noise,
                                     seed=SEED + 1, centres=centres)  # fmt: skip
    print(f"task: C={args.classes} d={args.features} train={args.train} test={args.test} "
          f"noise={args.noise} seed={SEED}; backend {args.backend}")  # fmt: skip
    coef, intercept = one_pass_weights(X, y, args.classes, noise=args.noise)
    print(f"one-pass (class means) model: test accuracy {accuracy(X_test, y_test, coef, intercept):.4f}")
    for skip in (False, True):
        coef, intercept, seconds = train_sgd(X, y, args.classes, epochs=args.epochs, lr=args.lr,
                                             skip_negligible=skip, backend=args.backend)  # fmt: skip
        print(f"SGD {args.epochs} epochs, skipping {'on ' if skip else 'off'}: test accuracy "
              f"{accuracy(X_test, y_test, coef, intercept):.4f}, train accuracy "
              f"{accuracy(X, y, coef, intercept):.4f}, epoch seconds "
              + " ".join(f"{s:.2f}" for s in seconds))  # fmt: skip


if __name__ == "__main__":
    main()
