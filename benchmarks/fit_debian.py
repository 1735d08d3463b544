"""LogisticRegression on the Debian package-description corpus: fit time, accuracy, peak RSS.

One fit per process, so that the peak resident set size (``ru_maxrss``) is that
fit's own (plus the interpreter, the corpus and the libraries, measured before
the fit and printed as ``rss_before``).  One thread (threadpoolctl and the
fastsoftmax kernels), ``max_iter=100``, ``C=1``, scikit-learn's default
``tol``.  Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py fastsoftmax
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py sklearn
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py fastsoftmax 1.466895
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py softmax 5
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py softmax 5 64
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py sgd 5

Prints one line of ``key=value`` pairs: seconds (wall), cpu_seconds (the process's CPU
time: on a loaded machine the better figure of a one-thread fit), n_iter, train objective,
test accuracy, the RSS figures in MB and threadpoolctl's summary (fastsoftmax's backends are
loaded before the timed fit, as scikit-learn's modules are imported before it).  With a target
objective (target 1 of issue 10: scikit-learn's objective at ``max_iter=100``, printed by
the sklearn run), the fastsoftmax fit stops at the first iteration whose objective is at
most the target, and the time is the time to reach it.  ``softmax`` and ``sgd`` fit
fastsoftmax's ``SoftmaxRegression()`` and scikit-learn's ``SGDClassifier(loss="log_loss",
tol=None)`` for the given number of epochs (target 2), their defaults otherwise; a third
argument of ``softmax`` is its ``learning_rate`` (e.g. 64 = 2 x batch_size / the rows' mean
squared norm, 1 for TF-IDF rows).
"""

from __future__ import annotations

import os
import resource
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def objective(coef, intercept, X, y, C):
    """scikit-learn's lbfgs objective: mean cross-entropy + ||coef||^2 / (2 C n)."""
    import numpy as np
    from scipy.special import logsumexp

    Z = np.asarray(X @ coef.T.astype(np.float64)) + intercept
    ce = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return float(ce.mean() + 0.5 * np.sum(coef.astype(np.float64) ** 2) / (C * len(y)))


class _TargetReached(Exception):
    pass


def _stop_at(target):
    """Make the wide L-BFGS stop (by an exception caught in main) once f <= target, keeping
    its iterate."""
    from fastsoftmax import _lbfgs

    solver = _lbfgs.minimize_lbfgs
    state = {}

    def minimize_lbfgs(fun, x0, **kwargs):
        def evaluate(x):
            f, g = fun(x)
            state["last"] = (float(f), x)
            return f, g

        def report(f):
            state["n_iter"] = state.get("n_iter", 0) + 1
            if f <= target:
                state["x"] = state["last"][1].copy()
                raise _TargetReached

        return solver(evaluate, x0, **{**kwargs, "report": report})

    _lbfgs.minimize_lbfgs = minimize_lbfgs
    return state


def main(impl, max_iter=100, C=1.0, target=None, learning_rate="auto"):
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from debian_corpus import debian_corpus, tfidf_split

    X_train, X_test, y_train, y_test, vec = tfidf_split(*debian_corpus())
    if impl == "fastsoftmax":
        import fastsoftmax
        from fastsoftmax.estimators import LogisticRegression

        fastsoftmax.set_num_threads(1)
        model = LogisticRegression(C=C, max_iter=max_iter)
        state = _stop_at(target) if target is not None else None
    elif impl == "softmax":
        import fastsoftmax
        from fastsoftmax.estimators import SoftmaxRegression

        fastsoftmax.set_num_threads(1)
        model = SoftmaxRegression(
            max_epochs=int(target), random_state=0, learning_rate=learning_rate
        )
        target = None
    elif impl == "sgd":
        from sklearn.linear_model import SGDClassifier

        model = SGDClassifier(loss="log_loss", max_iter=int(target), tol=None, random_state=0)
        target = None
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs")
    if impl in ("fastsoftmax", "softmax"):
        from fastsoftmax._backends import get_module

        get_module()  # the backends load once a process (numba's import), as an import would
    rss_before = _rss_mb()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=100 stops before convergence
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            model.fit(X_train, y_train)
        except _TargetReached:  # the iterate that reached the target objective
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            k, d = len(vec.classes_), X_train.shape[1]
            theta = state["x"]
            model.coef_ = theta[: k * d].reshape(k, d).astype(np.float32)
            model.intercept_ = theta[k * d :].astype(np.float32)
            model.n_iter_ = np.array([state["n_iter"]])
        else:
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        info = ";".join(f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info())
    print(
        f"impl={impl} seconds={seconds:.2f} cpu_seconds={cpu_seconds:.2f} n_iter={int(np.max(getattr(model, 'n_iter_', -1)))} "
        f"objective={objective(model.coef_, model.intercept_, X_train, y_train, C):.6f} "
        f"test_accuracy={model.score(X_test, y_test):.4f} rss_before_MB={rss_before:.0f} "
        f"peak_rss_MB={_rss_mb():.0f} shape={X_train.shape} nnz={X_train.nnz} "
        f"classes={len(vec.classes_)} threadpools={info}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fastsoftmax",
         target=float(sys.argv[2]) if len(sys.argv) > 2 else None,
         learning_rate=float(sys.argv[3]) if len(sys.argv) > 3 else "auto")
