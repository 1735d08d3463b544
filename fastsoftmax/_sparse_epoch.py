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
from typing import NamedTuple

import numpy as np

from ._backends import get_module
from ._objective import _data_kernel, _inverse_normalizer, _scale, decision
from ._validation import is_sparse
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


#: features a block when the epoch's (d, C) weights are copied back into coef (C, d)
_COPY_BLOCK = 1024
#: values a block of :func:`_sum_squares`
_SQUARES_BLOCK = 1 << 18


class _CSRRows(NamedTuple):
    """A CSR block of rows as the kernels read it (no scipy object: no scipy checks a minibatch)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]


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

    The epoch works on one (d, C) copy of the weights, whose feature rows are
    contiguous (``coef`` is (C, d): a row of ``W`` is strided there), and on
    the rows of ``X`` permuted once into the epoch's order, so that each
    minibatch is a contiguous slice of its arrays; ``coef`` gets the weights
    back at the end.
    """
    model, learner = trainer.model, trainer.learner
    if learner.state is None:
        learner.init_state(model.parameters())
    kernels = get_module()
    coef, b = model.coef, model._intercept()
    dtype = coef.dtype
    # the kernels' dtype: coef's, promoted with X's (float64 data is never computed in float32)
    work_dtype = np.result_type(dtype, X.dtype)
    if order is not None:
        X = X[order]
        y = y[order]
        sample_weight = None if sample_weight is None else sample_weight[order]
    data = X.data if X.data.dtype == work_dtype else X.data.astype(work_dtype)
    indices, indptr = X.indices, X.indptr
    b_work = None if b is None else b.astype(work_dtype, copy=False)
    weights = np.ascontiguousarray(coef.T)  # W (d, C): the epoch's working copy
    n_classes = weights.shape[1]
    l2 = float(model.l2)
    lr = learner.lr_at(trainer.epoch)
    step_lr = dtype.type(lr)
    shrink = 1.0 - lr * l2  # a: the penalty's factor of one step
    current = np.zeros(weights.shape[0], np.int64)  # the step each row is up to date at
    norm_squared = _sum_squares(coef) if l2 else 0.0
    n = X.shape[0]
    total = 0.0
    step = 0
    for step, begin in enumerate(range(0, n, batch_size), 1):
        stop = min(begin + batch_size, n)
        first, last = indptr[begin], indptr[stop]
        features, local = np.unique(indices[first:last], return_inverse=True)
        batch = _CSRRows(
            data[first:last], local.reshape(-1).astype(indices.dtype, copy=False),
            indptr[begin : stop + 1] - first, (stop - begin, features.shape[0]),
        )  # fmt: skip
        yb = y[begin:stop]
        sw = None if sample_weight is None else sample_weight[begin:stop]
        rows = weights[features]  # (k, C), a copy
        if l2:
            rows *= (shrink ** (step - 1 - current[features])).astype(dtype)[:, None]
            rows_squared = _sum_squares(rows)
        rows_work = rows if dtype == work_dtype else rows.astype(work_dtype)
        error = math.nan
        if trainer.track_train_error:  # at the parameters the loss is measured at
            logits = decision(batch, np.ascontiguousarray(rows_work.T), b_work)
            error = float(kernels.classification_error(logits, yb))
        # the kernel reads the (C, k) weights and writes their gradient as transposed views
        grad = np.empty_like(rows_work)
        intercept_grad = np.empty(n_classes, work_dtype)
        loss_sum, weight_total = _data_kernel(
            kernels, "softmax_ce_sums", batch, rows_work.T, b_work, yb, sw, grad.T,
            intercept_grad,
        )  # fmt: skip
        normalizer = None if mean_weight is None else (stop - begin) * mean_weight
        scale = _inverse_normalizer(weight_total, normalizer)
        _scale(grad, scale)
        _scale(intercept_grad, scale)
        loss = loss_sum * scale + 0.5 * l2 * norm_squared
        if l2:
            rows *= dtype.type(shrink)
        rows -= step_lr * grad.astype(dtype, copy=False)
        weights[features] = rows
        if b is not None:
            b -= step_lr * intercept_grad.astype(dtype, copy=False)
            if b_work is not b:
                b_work = b.astype(work_dtype)
        if l2:
            current[features] = step
            new_squared = _sum_squares(rows)
            norm_squared = max(shrink * shrink * (norm_squared - rows_squared) + new_squared, 0.0)
        learner.t += 1
        trainer._record_step(loss, error, stop - begin, sw)
        total += loss * (stop - begin)
        if progress is not None and (step % every == 0 or stop >= n):
            progress(step, total / stop)
    if l2:  # the rows' shrinkage since their last use
        weights *= (shrink ** (step - current)).astype(dtype)[:, None]
    for begin in range(0, weights.shape[0], _COPY_BLOCK):  # blocks: a cache-friendly transpose
        coef[:, begin : begin + _COPY_BLOCK] = weights[begin : begin + _COPY_BLOCK].T
    return total / n


def _sum_squares(a):
    """``||a||^2`` of a C-contiguous 2-D array, accumulated in float64.

    By blocks of rows (no float64 copy of a whole ``coef``) and by einsum's own
    loop: BLAS would start its threads for a minibatch's few thousand values.
    """
    rows = max(1, _SQUARES_BLOCK // max(1, a.shape[1]))
    total = 0.0
    for begin in range(0, a.shape[0], rows):
        flat = a[begin : begin + rows].reshape(-1).astype(np.float64, copy=False)
        total += float(np.einsum("i,i->", flat, flat))
    return total
