"""The training objectives, built once on top of the backends' data-term sums.

Private and non-validating: callers (the public functions, the estimators,
the Trainer, the epoch driver) pass arrays that are already checked: ``X``
2-D C-contiguous float32/float64/uint8, ``coef`` C-contiguous in the layout of
``coef_``, (n_classes, n_features) (a vector (n_features,) for the binary
model), ``intercept`` of ``coef``'s dtype or None, ``y`` intp labels in range
(float 0/1 targets for the binary model), ``sample_weight`` None or a
non-negative vector of ``coef``'s dtype.

The objective of a block of rows is

    data_sum / normalizer + penalty(coef)

where the backend kernel returns ``data_sum`` (the weighted loss sum and its
gradient sums) and the weight total.  ``normalizer`` defaults to the weight
total (the weighted mean); the estimators' minibatch rule passes
``len(batch) * mean_weight`` instead.  A normalizer of 0 (no rows, or all
weights 0) leaves only the penalty.

NOTE: interface stub; the thin-kernel implementation replaces the bodies.
"""

from __future__ import annotations

import numpy as np

from ._backends import get_module


def l2_penalty(coef, l2):
    """``0.5 * l2 * ||coef||^2`` as a float (accumulated in float64)."""
    if not l2:
        return 0.0
    flat = coef.reshape(-1)
    return 0.5 * float(l2) * float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))


def decision(X, coef, intercept=None, *, backend=None):
    """Logits ``X coef^T + intercept``, shape (n_samples, n_classes), in coef's dtype."""
    out = np.empty((X.shape[0], coef.shape[0]), coef.dtype)
    return get_module(backend).linear(X, np.ascontiguousarray(coef.T), intercept, out)


def softmax_loss_grad(X, coef, intercept, y, sample_weight=None, l2=0.0, *, normalizer=None,
                      backend=None):  # fmt: skip
    """Softmax regression objective and its gradients.

    Returns ``(loss, coef_grad, intercept_grad)``: a float, an array like
    ``coef`` (C, d) and one of shape (C,) (zeros when ``intercept`` is None).
    """
    n, C = X.shape[0], coef.shape[0]
    dtype = coef.dtype
    b = np.zeros(C, dtype) if intercept is None else intercept
    dW = np.empty((coef.shape[1], C), dtype)
    db = np.empty(C, dtype)
    mean = get_module(backend).softmax_cross_entropy_grad(
        X, np.ascontiguousarray(coef.T), b, y, sample_weight, 0.0, dW, db
    )
    total = float(n if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    norm = total if normalizer is None else float(normalizer)
    factor = total / norm if norm > 0 else 0.0
    coef_grad = np.ascontiguousarray(dW.T) * dtype.type(factor)
    intercept_grad = db * dtype.type(factor)
    if l2:
        coef_grad += dtype.type(l2) * coef
    return float(mean) * factor + l2_penalty(coef, l2), coef_grad, intercept_grad


def logistic_loss_grad(X, coef, intercept, y, sample_weight=None, l2=0.0, *, normalizer=None,
                       backend=None):  # fmt: skip
    """Binary logistic regression objective and its gradients.

    ``coef`` is (d,), ``intercept`` a float or None; returns
    ``(loss, coef_grad (d,), intercept_grad float)``.
    """
    n, dtype = X.shape[0], coef.dtype
    dw = np.empty(coef.shape, dtype)
    b = 0.0 if intercept is None else float(intercept)
    mean, db = get_module(backend).logistic_loss_grad(X, coef, b, y, sample_weight, 0.0, dw)
    total = float(n if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    norm = total if normalizer is None else float(normalizer)
    factor = total / norm if norm > 0 else 0.0
    dw *= dtype.type(factor)
    if l2:
        dw += dtype.type(l2) * coef
    return float(mean) * factor + l2_penalty(coef, l2), dw, float(db) * factor
