"""LogisticRegression on the Debian package-description corpus: fit time, accuracy, peak RSS.

One fit per process, so that the peak resident set size (``ru_maxrss``) is that
fit's own (plus the interpreter, the corpus and the libraries, measured before
the fit and printed as ``rss_before``).  One thread (threadpoolctl and the
fastsoftmax kernels), ``max_iter=100``, ``C=1``, scikit-learn's default
``tol``.  Usage::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py fastsoftmax
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fit_debian.py sklearn

Prints one line of ``key=value`` pairs: seconds (wall), cpu_seconds (the process's CPU
time: on a loaded machine the better figure of a one-thread fit), n_iter, train objective,
test accuracy, the RSS figures in MB and threadpoolctl's summary.
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


def main(impl, max_iter=100, C=1.0):
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from debian_corpus import debian_corpus, tfidf_split

    X_train, X_test, y_train, y_test, vec = tfidf_split(*debian_corpus())
    if impl == "fastsoftmax":
        import fastsoftmax
        from fastsoftmax.estimators import LogisticRegression

        fastsoftmax.set_num_threads(1)
        model = LogisticRegression(C=C, max_iter=max_iter)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=C, max_iter=max_iter, solver="lbfgs")
    rss_before = _rss_mb()
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=100 stops before convergence
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(X_train, y_train)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        info = ";".join(f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info())
    print(
        f"impl={impl} seconds={seconds:.2f} cpu_seconds={cpu_seconds:.2f} n_iter={int(np.max(model.n_iter_))} "
        f"objective={objective(model.coef_, model.intercept_, X_train, y_train, C):.6f} "
        f"test_accuracy={model.score(X_test, y_test):.4f} rss_before_MB={rss_before:.0f} "
        f"peak_rss_MB={_rss_mb():.0f} shape={X_train.shape} nnz={X_train.nnz} "
        f"classes={len(vec.classes_)} threadpools={info}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fastsoftmax")
