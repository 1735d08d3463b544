"""One epoch of minibatch training: the driver of :class:`~fastsoftmax.Trainer` and the estimators.

:func:`run_epoch` trains a :class:`~fastsoftmax.Trainer`'s model on every
minibatch of checked data once, either in one call of the backend's compiled
whole-epoch kernel (``train_epoch``, see :func:`epoch_kernel`) or by the
Python loop of the Trainer's non-validating step.  Both take a weighted step
the same way: the minibatch's data term divided by a normalizer, the weight
total by default or ``len(batch) * mean_weight`` (the estimators' rule, an
unbiased estimate of the full weighted objective).

Private and non-validating, like :mod:`fastsoftmax._objective`: ``X`` is
C-contiguous and checked (or a checked CSR matrix, trained by the Python loop), ``y`` intp labels in range, ``sample_weight`` None
or checked.

On a CSR matrix, plain SGD (the built-in :class:`~fastsoftmax.learners.SGD`
without an L1 term) takes the lazy sparse step of
:func:`fastsoftmax._sparse_epoch.lazy_sparse_epoch`: each minibatch reads
and writes only the weight rows of the features it contains, so an epoch
costs O(nnz x C) rather than O(n_features x C) a minibatch; the L2 shrinkage
of the rows it skips is caught up exactly when they are next used and at the
end of the epoch.  The other learners (their state of every row moves at
every step) and L1 keep the dense step.

Examples
--------
>>> import numpy as np
>>> from fastsoftmax import SoftmaxModel, Trainer
>>> from fastsoftmax._epoch_driver import run_epoch
>>> X = np.eye(4, dtype=np.float32)
>>> trainer = Trainer(SoftmaxModel(4, 2), "sgd", track_train_error=False)
>>> round(run_epoch(trainer, X, np.array([0, 1, 0, 1]), None, None, 2), 6)  # log(2)
0.693147
>>> trainer.n_minibatches, trainer.learner.t
(2, 2)
"""

from __future__ import annotations

import math

import numpy as np

from ._backends import get_backend, get_module
from ._sparse_epoch import lazy_sparse_applies, lazy_sparse_epoch
from .learners import LEARNERS

__all__ = ["epoch_kernel", "run_epoch"]


def epoch_kernel(trainer, X):
    """The compiled whole-epoch kernel to train with, or None for the Python minibatch loop.

    The kernel implements the built-in learners only (not subclasses) on a
    :class:`~fastsoftmax.SoftmaxModel`.  It is taken from the current backend;
    a Cython build without ``train_epoch`` borrows numba's, since the
    per-minibatch Python overhead would otherwise be the bottleneck.
    """
    learner, model = trainer.learner, trainer.model
    if not isinstance(X, np.ndarray):
        return None  # a CSR matrix: the compiled epoch kernels read dense rows
    if not trainer._fused or type(learner) is not LEARNERS.get(learner.kind):
        return None
    if X.dtype != np.uint8 and X.dtype != model.dtype:
        return None  # e.g. partial_fit with float64 data on a float32 model
    module = get_module()
    if not hasattr(module, "train_epoch") and get_backend() == "cython":
        try:
            module = get_module("numba")
        except ImportError:
            return None
    return getattr(module, "train_epoch", None)


def run_epoch(trainer, X, y, sample_weight, order, batch_size, *, mean_weight=None,
              compiled=True, lazy=True, progress=None, n_updates=50):  # fmt: skip
    """Train on every minibatch once, at the learning rate of ``trainer.epoch``.

    Parameters
    ----------
    trainer : Trainer
        Its model is updated in place, its learner steps.
    X, y, sample_weight
        Checked data (see the module docstring).
    order : ndarray of int or None
        The rows of the epoch in their order (None: all rows as they are),
        possibly a subset of the rows of ``X`` (e.g. the training rows of a
        validation split, trained in place without copying them); minibatch
        ``i`` is rows ``order[i * batch_size : (i + 1) * batch_size]``.
    batch_size : int
    mean_weight : float or None
        None: each minibatch's data term is its weighted mean; a float: it
        is divided by ``len(batch) * mean_weight`` instead.
    compiled : bool, default=True
        Use the compiled epoch kernel when there is one (:func:`epoch_kernel`).
    lazy : bool, default=True
        On a CSR ``X``, use the lazy sparse step when the learner allows it
        (:func:`~fastsoftmax._sparse_epoch.lazy_sparse_applies`); False: the dense
        step of every row.
    progress : callable, optional
        ``progress(batches_done, mean_loss_so_far)``, called about
        ``n_updates`` times and after the last minibatch.

    Returns
    -------
    loss : float
        The mean of the minibatches' losses (each before its update),
        weighted by their number of rows; NaN without rows.
    """
    n = X.shape[0] if order is None else order.shape[0]
    if n == 0:
        return math.nan
    n_batches = -(-n // batch_size)
    every = n_batches if progress is None else max(1, n_batches // n_updates)
    if lazy and lazy_sparse_applies(trainer, X):
        return lazy_sparse_epoch(
            trainer, X, y, sample_weight, order, batch_size, mean_weight, progress, every
        )
    kernel = epoch_kernel(trainer, X) if compiled else None
    if kernel is not None:
        return _compiled_epoch(
            kernel, trainer, X, y, sample_weight, order, batch_size, mean_weight, progress, every
        )
    total = 0.0
    for i, begin in enumerate(range(0, n, batch_size), 1):
        stop = begin + batch_size
        rows = slice(begin, stop) if order is None else order[begin:stop]
        yb = y[rows]
        sw = None if sample_weight is None else sample_weight[rows]
        normalizer = None if mean_weight is None else yb.shape[0] * mean_weight
        total += trainer._train_step(X[rows], yb, sw, normalizer) * yb.shape[0]
        if progress is not None and (i % every == 0 or stop >= n):
            progress(i, total / min(stop, n))
    return total / n


def _compiled_epoch(kernel, trainer, X, y, sample_weight, order, batch_size, mean_weight,
                    progress, per_call):  # fmt: skip
    """Run an epoch with the compiled kernel, ``per_call`` whole minibatches a call."""
    model, learner = trainer.model, trainer.learner
    if learner.state is None:
        learner.init_state(model.parameters())
    if order is None:
        order = np.arange(X.shape[0])
    n = order.shape[0]
    n_batches = -(-n // batch_size)
    total = 0.0
    done = 0
    for first in range(0, n_batches, per_call):
        rows = order[first * batch_size : (first + per_call) * batch_size]
        # W is the view coef.T: the kernel trains coef in place
        loss, learner.t = kernel(
            X, y, sample_weight, model.W, model.b, rows, batch_size, model.l2,
            model.fit_intercept, learner.kind, learner.hyperparameters(),
            learner.lr_at(trainer.epoch), learner.t, learner.state, weight_mean=mean_weight,
            l1=model.l1,
        )  # fmt: skip
        total += loss * rows.shape[0]
        done += rows.shape[0]
        if progress is not None:
            progress(min(first + per_call, n_batches), total / done)
    trainer.n_minibatches += n_batches
    trainer.n_samples_seen += n
    return total / n

