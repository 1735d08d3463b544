"""The lazy sparse epoch: plain SGD on a CSR matrix, touching only the minibatches' rows.

Called by :func:`fastsoftmax._epoch_driver.run_epoch` (private and
non-validating like it).  The dense minibatch step reads and writes all
``n_features x n_classes`` weights (and the learner's state); on text data a
minibatch has a few hundred distinct features out of 10^5, so this step reads
and writes only their rows of ``W`` (the columns of ``coef``) and the
intercept, and an epoch costs O(nnz x C) instead of O(n_features x C) a
minibatch.  For plain SGD with an L2 penalty this lazy update is exact (see
:func:`lazy_sparse_epoch`).  The learners with a state (momentum, Adam, ...)
move every row's state at every step, so they and the L1 term keep the
dense step.
"""

from __future__ import annotations

import math

import numpy as np

from ._backends import get_module
from ._objective import decision, softmax_loss_grad
from ._validation import as_compute_dtype, is_sparse
from .learners import SGD

__all__ = ["lazy_sparse_applies", "lazy_sparse_epoch"]


def lazy_sparse_applies(trainer, X):
    """Whether an epoch on ``X`` takes the lazy sparse step (see the module docstring)."""
    model = trainer.model
    return (
        is_sparse(X)
        and trainer._fused
        and type(trainer.learner) is SGD
        and not getattr(model, "l1", 0.0)
    )


def lazy_sparse_epoch(trainer, X, y, sample_weight, order, batch_size, mean_weight,
                      progress, every):  # fmt: skip
    """An epoch of plain SGD on a CSR ``X`` that touches only the minibatches' feature rows.

    The dense step with the L2 penalty ``l2`` is ``W <- a W - lr G`` with
    ``a = 1 - lr l2`` and ``G`` the data term's gradient, which is zero on the
    rows (features) absent from the minibatch: those rows are only scaled by
    ``a``.  So each row remembers the step it was last brought up to date at
    (``current``); a minibatch first multiplies its rows by ``a ** skipped``,
    then computes the logits and the gradient on the compact problem of its
    own columns and writes those rows back, and the end of the epoch brings
    every row up to date.  The learning rate is constant within an epoch, so
    this equals the dense step to rounding.  The penalty term of the reported
    loss uses ``||W||^2`` updated by the same rule (exactly recomputed each
    epoch).
    """
    model, learner = trainer.model, trainer.learner
    if learner.state is None:
        learner.init_state(model.parameters())
    coef, b = model.coef, model._intercept()
    dtype = coef.dtype
    l2 = float(model.l2)
    lr = learner.lr_at(trainer.epoch)
    shrink = 1.0 - lr * l2  # a: the penalty's factor of one step
    current = np.zeros(coef.shape[1], np.int64)  # the step each row is up to date at
    norm_squared = float(np.dot(coef.ravel(), coef.ravel().astype(np.float64))) if l2 else 0.0
    n = X.shape[0] if order is None else order.shape[0]
    total = 0.0
    for step, begin in enumerate(range(0, n, batch_size), 1):
        stop = begin + batch_size
        rows = slice(begin, stop) if order is None else order[begin:stop]
        Xb, yb = X[rows], y[rows]
        sw = None if sample_weight is None else sample_weight[rows]
        features, local = np.unique(Xb.indices, return_inverse=True)
        local = local.reshape(-1).astype(Xb.indices.dtype, copy=False)
        Xc = Xb.__class__((Xb.data, local, Xb.indptr), shape=(Xb.shape[0], features.shape[0]))
        coef_rows = coef[:, features]  # (C, k), a copy
        if l2:
            skipped = step - 1 - current[features]
            coef_rows *= (shrink ** skipped).astype(dtype)
            rows_squared = float(np.dot(coef_rows.ravel(), coef_rows.ravel().astype(np.float64)))
        Xk, coef_k, b_k, sw_k = as_compute_dtype(Xc, coef_rows, b, sw)
        error = math.nan
        if trainer.track_train_error:  # at the parameters the loss is measured at
            error = float(get_module().classification_error(decision(Xk, coef_k, b_k), yb))
        normalizer = None if mean_weight is None else yb.shape[0] * mean_weight
        loss, coef_grad, intercept_grad = softmax_loss_grad(
            Xk, coef_k, b_k, yb, sw_k, 0.0, normalizer=normalizer
        )
        loss += 0.5 * l2 * norm_squared
        step_lr = dtype.type(lr)
        if l2:
            coef_rows *= dtype.type(shrink)
        coef_rows -= step_lr * coef_grad.astype(dtype, copy=False)
        coef[:, features] = coef_rows
        if b is not None:
            b -= step_lr * intercept_grad.astype(dtype, copy=False)
        if l2:
            current[features] = step
            new_squared = float(np.dot(coef_rows.ravel(), coef_rows.ravel().astype(np.float64)))
            norm_squared = max(shrink * shrink * (norm_squared - rows_squared) + new_squared, 0.0)
        learner.t += 1
        trainer._record_step(loss, error, yb.shape[0], sw)
        total += loss * yb.shape[0]
        if progress is not None and (step % every == 0 or stop >= n):
            progress(step, total / min(stop, n))
    if l2:  # the rows' shrinkage since their last use
        coef *= (shrink ** (step - current)).astype(dtype)[None, :]
    return total / n
