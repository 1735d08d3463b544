"""Full-batch loss and gradient of softmax regression on a sparse text-like corpus (issue 10, target 3).

The corpus is synthetic and reproducible (:func:`zipf_corpus`): 60,000
documents, 80,000 features whose frequencies follow Zipf's law (feature ``j``
has probability proportional to ``1 / (j + 1)``), about 15 distinct non-zeros
per document (Poisson lengths), TF-like float32 values and 50 classes, as
CSR with int32 indices.  Dense, it would take 19 GB.

One call computes the mean cross-entropy of ``X @ W + b`` and its gradient
with respect to ``W`` and ``b`` over all rows.  Contenders: every compiled
fastsoftmax backend through the public ``softmax_cross_entropy_grad`` (the
numpy backend, scipy.sparse products, is the reference of the group) and
scikit-learn's ``LinearModelLoss.loss_gradient`` on the same CSR matrix (what
its ``LogisticRegression`` calls), on one and on two threads.

A real corpus, available offline: the Debian package descriptions of the
machine's APT lists (:mod:`debian_corpus`; skipped without them), TF-IDF
unigrams and bigrams, labelled by section (58 classes): ``LogisticRegression``
``fit`` with ``max_iter=100`` on one thread, fastsoftmax against scikit-learn's
lbfgs, with the test accuracy in the extra info.  ``fit_debian.py`` runs one
such fit per process for its peak RSS.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchutils import compiled_backends, impl_name, run

import fastsoftmax

N_DOCS, N_FEATURES, NNZ_PER_DOC, C = 60_000, 80_000, 15, 50
THREADS = (1, 2)


def zipf_corpus(n_docs=N_DOCS, n_features=N_FEATURES, nnz_per_doc=NNZ_PER_DOC, n_classes=C,
                seed=0):  # fmt: skip
    """A reproducible Zipf-distributed bag-of-words CSR matrix and its labels.

    Each document draws a Poisson number of tokens (mean ``nnz_per_doc``)
    from the Zipf distribution over the features; repeated tokens are
    summed into counts, and each row is scaled to unit L2 norm (as TF-IDF
    rows are).  The labels come from a random linear model of the counts,
    so that they can be learned.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_features + 1)
    p /= p.sum()
    lengths = np.maximum(1, rng.poisson(nnz_per_doc, n_docs))
    rows = np.repeat(np.arange(n_docs), lengths)
    cols = rng.choice(n_features, size=rows.size, p=p)
    X = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_docs, n_features))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.csr_matrix(sp.diags(1.0 / norms).astype(np.float32) @ X)
    X.indices, X.indptr = X.indices.astype(np.int32), X.indptr.astype(np.int32)
    topic = rng.standard_normal((n_features, n_classes)).astype(np.float32)
    y = np.asarray((X @ topic).argmax(axis=1)).ravel().astype(np.intp)
    return X, y


@pytest.fixture(scope="module")
def corpus():
    return zipf_corpus()


def _group(threads):
    return f"sparse grad zipf csr float32 {threads} thread{'s' if threads > 1 else ''}"


def _params():
    rng = np.random.default_rng(2)
    W = (rng.standard_normal((N_FEATURES, C)) * 0.01).astype(np.float32)
    return W, np.zeros(C, np.float32)


def _info(X, threads, **info):
    # two sparse products X @ W and X^T (P - Y), 2 flops per multiply-add
    return dict(threads=threads, flops=4 * X.nnz * C, rows=X.shape[0], nnz=X.nnz, **info)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("backend", compiled_backends())
def test_fastsoftmax_sparse_grad(benchmark, corpus, backend, threads):
    X, y = corpus
    W, b = _params()
    benchmark.group = _group(threads)
    run(
        benchmark,
        lambda: fastsoftmax.softmax_cross_entropy_grad(X, W, b, y, backend=backend),
        **_info(X, threads, impl=impl_name(backend), kind="fastsoftmax", backend=backend),
        data="zipf",
    )


@pytest.mark.parametrize("threads", THREADS)
def test_sklearn_sparse_loss_gradient(benchmark, corpus, sklearn, threads):
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    X, y = corpus
    W, b = _params()
    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=C), fit_intercept=True)
    coef = np.ascontiguousarray(np.hstack([W.T, b[:, None]]))  # (C, d + 1), intercept last
    yf = y.astype(np.float32)
    benchmark.group = _group(threads)
    run(
        benchmark,
        lambda: loss.loss_gradient(coef, X, yf, l2_reg_strength=0.0, n_threads=threads),
        **_info(X, threads, impl="sklearn", kind="peer"),
        data="zipf",
    )


@pytest.fixture(scope="module")
def debian():
    from debian_corpus import debian_corpus, tfidf_split

    try:
        corpus = debian_corpus()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return tfidf_split(*corpus)


@pytest.mark.parametrize("impl", ["fastsoftmax", "sklearn"])
def test_debian_logistic_fit(benchmark, debian, sklearn, impl):
    import warnings

    from fit_debian import objective

    X_train, X_test, y_train, y_test, vec = debian
    if impl == "fastsoftmax":
        from fastsoftmax.estimators import LogisticRegression
    else:
        from sklearn.linear_model import LogisticRegression
    benchmark.group = "sparse fit debian descriptions tfidf 1 thread"

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter=100 stops before convergence
            return LogisticRegression(C=1.0, max_iter=100).fit(X_train, y_train)

    model = run(benchmark, fit, rounds=1, warmup=False, impl=impl,
                kind="fastsoftmax" if impl == "fastsoftmax" else "peer", data="debian",
                rows=X_train.shape[0], features=X_train.shape[1], nnz=X_train.nnz,
                classes=len(vec.classes_))  # fmt: skip
    benchmark.extra_info["test_accuracy"] = float(model.score(X_test, y_test))
    benchmark.extra_info["objective"] = objective(model.coef_, model.intercept_, X_train,
                                                  y_train, 1.0)  # fmt: skip
    benchmark.extra_info["n_iter"] = int(np.max(model.n_iter_))
