"""Cython backend: compiled, ``nogil`` OpenMP kernels from ``src_cython/``.

See :mod:`fastsoftmax._backends` for the kernel protocol.  This module is the
thin Python layer: it picks the thread count (from
:func:`fastsoftmax.get_num_threads`, fewer for small inputs), allocates the
per-thread accumulators and scratch buffers, and reduces and scales the
results.  The loops live in ``src_cython/_cython_kernels.pyx`` and the SIMD
code in ``src_cython/fs_simd*.h`` (AVX-512, AVX2 or baseline, chosen at run
time).

Importing this module raises ImportError when the extension was not built,
which makes the backend unavailable rather than broken.
"""

from __future__ import annotations

import numpy as np

from .. import _cython_kernels as _k
from .._threads import get_num_threads
from . import _epoch_args

# Below this much work per thread, a second thread costs more than it saves.
_MIN_ELEMENTS_PER_THREAD = 1 << 16
_MIN_FLOPS_PER_THREAD = 1 << 20
# Rows of X per block of the fused kernels: the block stays in L2 between the
# forward and the backward product.
_BLOCK_BYTES = 1 << 17


def _threads(work, min_work=_MIN_ELEMENTS_PER_THREAD):
    return int(max(1, min(get_num_threads(), work // min_work)))


def _blocking(n, d, C, itemsize):
    """(threads, rows per block) of a fused pass over X (n, d)."""
    block = max(4, min(512, _BLOCK_BYTES // max(1, d * itemsize)) // 4 * 4)
    nblocks = -(-n // block)
    return max(1, min(_threads(n * d * max(C, 1), _MIN_FLOPS_PER_THREAD), nblocks)), block


def _weights(sample_weight, n, dtype):
    if sample_weight is None:
        return np.empty(0, dtype), float(n)
    return sample_weight, float(np.sum(sample_weight, dtype=np.float64))


def softmax(x, out):
    _k.rows(0, x, out, _threads(x.size))
    return out


def log_softmax(x, out):
    _k.rows(1, x, out, _threads(x.size))
    return out


def logsumexp(x, out):
    if x.shape[1] == 0:  # empty rows: log(0)
        out.fill(-np.inf)
        return out
    _k.rows(2, x, out.reshape(-1, 1), _threads(x.size))
    return out


def linear(X, W, b, out):
    if b is None:
        b = np.zeros(W.shape[1], W.dtype)
    work = X.shape[0] * X.shape[1] * W.shape[1]
    _k.linear(X, np.ascontiguousarray(W.T), b, out, _threads(work, _MIN_FLOPS_PER_THREAD))
    return out


def cross_entropy(logits, y, out):
    _k.cross_entropy(logits, y, out, _threads(logits.size))
    return out


def softmax_cross_entropy_grad(X, W, b, y, sample_weight, l2, dW_out, db_out):
    (n, d), C, dtype = X.shape, W.shape[1], W.dtype
    sw, m = _weights(sample_weight, n, dtype)
    scale = 1.0 / m if m > 0 else 0.0
    threads, block = _blocking(n, d, C, X.itemsize)
    dWT = np.zeros((threads, C, d), dtype)
    db = np.zeros((threads, C))
    scratch = np.empty((threads, block, C), dtype)
    loss = _k.softmax_cross_entropy_grad(
        X, np.ascontiguousarray(W.T), b, y, sw, dWT, db, scratch, threads
    )
    if scale:  # per-thread accumulators reduced once
        np.multiply((dWT[0] if threads == 1 else dWT.sum(axis=0)).T, dtype.type(scale), out=dW_out)
        db_out[...] = db.sum(axis=0) * scale
        loss *= scale
    else:  # no rows, or all weights 0: only the penalty remains
        dW_out.fill(0)
        db_out.fill(0)
        loss = 0.0
    if l2:
        dW_out += dtype.type(l2) * W
        loss += 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64)))
    return loss


def sigmoid(x, out):
    _k.sigmoid(x, out, _threads(x.size))
    return out


def binary_cross_entropy(logits, y, out):
    _k.binary_cross_entropy(logits, y, out, _threads(logits.size))
    return out


def logistic_loss_grad(X, w, b, y, sample_weight, l2, dw_out):
    (n, d), dtype = X.shape, w.dtype
    sw, m = _weights(sample_weight, n, dtype)
    scale = 1.0 / m if m > 0 else 0.0
    threads, block = _blocking(n, d, 1, X.itemsize)
    dw = np.zeros((threads, d), dtype)
    db = np.zeros((threads, 1))
    scratch = np.empty((threads, block), dtype)
    loss = _k.logistic_loss_grad(X, w, float(b), y, sw, dw, db, scratch, threads) * scale
    if scale:
        np.multiply(dw[0] if threads == 1 else dw.sum(axis=0), dtype.type(scale), out=dw_out)
    else:  # no rows, or all weights 0: only the penalty remains
        dw_out.fill(0)
        loss = 0.0
    if l2:
        dw_out += dtype.type(l2) * w
        loss += 0.5 * l2 * float(np.sum(np.square(w, dtype=np.float64)))
    return loss, float(db.sum()) * scale if scale else 0.0


def classification_error(logits, y):
    n = logits.shape[0]
    if n == 0:
        return 0.0
    return _k.classification_error_count(logits, y, _threads(logits.size)) / n


def train_epoch(
    X, y, sample_weight, W, b, order, batch_size, l2, fit_intercept,
    kind, hyperparameters, lr, t, state, weight_mean=None,
):  # fmt: skip
    """One epoch of minibatch softmax-regression training in compiled code.

    See "Optional whole-epoch kernel" in :mod:`fastsoftmax._backends` for the
    contract; ``W``, ``b`` and the ``state`` arrays are updated in place.
    Returns ``(loss, t)``: the mean minibatch loss (before each update,
    weighted by rows) and the step counter after the epoch.
    """
    args = _epoch_args.prepare(
        X, y, sample_weight, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state
    )
    spec = args.spec
    status = _k.learner_update_status(
        spec.code, len(spec.state_names), len(spec.hyperparameter_names)
    )
    _epoch_args.check_update_status(status, spec, "cython", "src_cython/_cython_kernels.pyx")
    C, d = args.WT.shape
    # a minibatch is split over threads when each gets enough work
    threads = _threads(args.batch_size * d * C, _MIN_FLOPS_PER_THREAD // 4)
    loss, t = _k.train_epoch(
        X, args.y, args.sample_weight,
        float(weight_mean or 0.0), args.WT, args.b, args.order, args.batch_size, float(l2),
        bool(fit_intercept), spec.code, args.hyperparameters, float(lr), int(t),
        args.states_W, args.states_b, threads,
    )  # fmt: skip
    _epoch_args.store(args)
    return float(loss), int(t)
