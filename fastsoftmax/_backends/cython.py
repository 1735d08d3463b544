"""Cython backend: compiled, ``nogil`` OpenMP kernels from ``src_cython/``.

See :mod:`fastsoftmax._backends` for the kernel protocol.  This module is the
thin Python layer: it picks the thread count (from
:func:`fastsoftmax.get_num_threads`, fewer for small inputs), allocates the
per-thread accumulators and scratch buffers, and reduces the per-thread
sums (nothing is normalised or penalised here: see
:mod:`fastsoftmax._objective`).  The loops live in ``src_cython/_cython_kernels.pyx`` and the SIMD
code in ``src_cython/fs_simd*.h`` (AVX-512, AVX2 or baseline, chosen at run
time).

Importing this module raises ImportError when the extension was not built,
which makes the backend unavailable rather than broken.
"""

from __future__ import annotations

import numpy as np

from .. import _cython_kernels as _k
from .. import _sparse_kernels as _sk
from .._threads import get_num_threads
from . import _epoch_args, _tiling, weight_total

# Below this much work per thread, a second thread costs more than it saves.
_MIN_ELEMENTS_PER_THREAD = 1 << 16
_MIN_FLOPS_PER_THREAD = 1 << 20
# multiply-adds of a minibatch (rows x features x classes) per thread of train_epoch
_MIN_EPOCH_WORK_PER_THREAD = 1 << 15


def _threads(work, min_work=_MIN_ELEMENTS_PER_THREAD):
    return int(max(1, min(get_num_threads(), work // min_work)))


def _blocking(n, d, C, itemsize, block=None):
    """(threads, rows per block) of a fused pass over X (n, d)."""
    # rows of X per block: the block stays in L2 between the forward and the backward product
    block = block or _tiling.block_rows(d, itemsize)
    nblocks = -(-n // block)
    return max(1, min(_threads(n * d * max(C, 1), _MIN_FLOPS_PER_THREAD), nblocks)), block


def _unit_or(sample_weight, dtype):
    # the extension reads an empty vector as unit weights
    return np.empty(0, dtype) if sample_weight is None else sample_weight


def softmax(x, out):
    _k.softmax_rows(x, out, _threads(x.size))
    return out


def log_softmax(x, out):
    _k.log_softmax_rows(x, out, _threads(x.size))
    return out


def logsumexp(x, out):
    if x.shape[1] == 0:  # empty rows: log(0)
        out.fill(-np.inf)
        return out
    _k.logsumexp_rows(x, out, _threads(x.size))
    return out


def linear(X, coef, intercept, out):
    if intercept is None:
        intercept = np.zeros(coef.shape[0], coef.dtype)
    work = X.shape[0] * X.shape[1] * coef.shape[0]
    _k.linear(X, coef, intercept, out, _threads(work, _MIN_FLOPS_PER_THREAD))
    return out


def cross_entropy(logits, y, out):
    _k.cross_entropy(logits, y, out, _threads(logits.size))
    return out


def _accumulators(out, threads):
    """Per-thread (threads, *out.shape) gradient accumulators, zeroed: ``out`` itself on one thread."""
    if threads == 1:
        out.fill(0)
        return out[None]
    return np.zeros((threads,) + out.shape, out.dtype)


def _reduce(accumulators, out):
    if accumulators.shape[0] > 1:  # else out was the accumulator
        np.sum(accumulators, axis=0, out=out)


def softmax_ce_sums(X, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out, *,
                    skip_negligible=True):  # fmt: skip
    (n, d), C, dtype = X.shape, coef.shape[0], coef.dtype
    if intercept is None:
        intercept = np.zeros(C, dtype)
    tiled, block, class_tile = _tiling.plan(d, C, coef.itemsize, X.itemsize)
    threads = _threads(n * d * C, _MIN_FLOPS_PER_THREAD)
    if d and (tiled or _tiling.compiled_tiles_for_single_pass(C, class_tile, threads)):
        # (the single-pass regime never skips)
        return _softmax_ce_sums_tiled(X, coef, intercept, y, sample_weight, coef_grad_out,
                                      intercept_grad_out, block, class_tile,
                                      skip_negligible and tiled)  # fmt: skip
    threads, block = _blocking(n, d, C, X.itemsize, block)
    coef_acc = _accumulators(coef_grad_out, threads)
    intercept_acc = np.zeros((threads, C))
    scratch = np.empty((threads, block, C), dtype)
    loss = _k.softmax_ce_sums(
        X, coef, intercept, y, _unit_or(sample_weight, dtype), coef_acc, intercept_acc, scratch,
        threads,
    )  # fmt: skip
    _reduce(coef_acc, coef_grad_out)
    intercept_grad_out[...] = intercept_acc.sum(axis=0)
    return float(loss), weight_total(sample_weight, n)


# (row, tile) pairs of the last tiled call: all, computed by pass A, hot in pass B, and
# the rows whose pass A was screened; filled when set to an intp array of 4 (tests, benchmarks)
pass_counts = None


def _softmax_ce_sums_tiled(X, coef, intercept, y, sample_weight, coef_grad_out,
                           intercept_grad_out, block, class_tile, skip_negligible):  # fmt: skip
    # threads own class tiles: no per-thread copies of the (C, d) gradient
    (n, d), C, dtype = X.shape, coef.shape[0], coef.dtype
    if not _tiling._forced["row_block"]:  # whole register blocks of 48 rows, X block in L2
        block = max(48, _tiling.BLOCK_BYTES * 3 // 2 // max(1, d * X.itemsize) // 48 * 48)
    block = max(1, min(block, n, 512))
    ntiles = -(-C // class_tile)
    stored_rows = _tiling.stored_rows(block, C, coef.itemsize)
    block = stored_rows or block
    # the first `stored` tiles keep their logits from pass A to pass B, the others recompute
    stored = ntiles if stored_rows else _tiling.stored_tiles(block, C, class_tile, coef.itemsize)
    threads = max(1, min(_threads(n * d * C, _MIN_FLOPS_PER_THREAD), ntiles))
    coef_grad_out.fill(0)
    intercept_grad = np.zeros(C)
    padded = -(-block // 16) * 16
    chunk = _k.TILE_GRAD_CHUNK  # the residual goes in whole chunks of rows
    residual = class_tile * (-(-padded // chunk) * chunk)
    line = 64 // coef.itemsize  # room to align each scratch row to a cache line
    loss = _k.softmax_ce_sums_tiled(
        X, coef, intercept, y, _unit_or(sample_weight, dtype), coef_grad_out, intercept_grad,
        np.empty((threads, residual + (0 if stored == ntiles else class_tile * padded) + line),
                 dtype),  # fmt: skip
        np.empty((threads + 1, d * padded + line), dtype),
        np.empty((threads + 1, block * (d + 2 * line) + line), dtype),
        np.empty((ntiles, block)), np.empty((ntiles, block)),
        np.empty(stored * class_tile * padded + line if stored else 0, dtype), class_tile,
        bool(skip_negligible), _tiling.log_skip_threshold(dtype), threads,
        _tiling.screen_pass_a(), pass_counts,
    )  # fmt: skip
    intercept_grad_out[...] = intercept_grad
    return float(loss), weight_total(sample_weight, n)


def sigmoid(x, out):
    _k.sigmoid(x, out, _threads(x.size))
    return out


def binary_cross_entropy(logits, y, out):
    _k.binary_cross_entropy(logits, y, out, _threads(logits.size))
    return out


def logistic_sums(X, coef, intercept, y, sample_weight, coef_grad_out):
    (n, d), dtype = X.shape, coef.dtype
    threads, block = _blocking(n, d, 1, X.itemsize)
    coef_acc = _accumulators(coef_grad_out, threads)
    intercept_acc = np.zeros((threads, 1))
    scratch = np.empty((threads, block), dtype)
    loss = _k.logistic_sums(
        X, coef, float(intercept), y, _unit_or(sample_weight, dtype), coef_acc, intercept_acc,
        scratch, threads,
    )  # fmt: skip
    _reduce(coef_acc, coef_grad_out)
    return float(loss), float(intercept_acc.sum()), weight_total(sample_weight, n)


def classification_error(logits, y):
    n = logits.shape[0]
    if n == 0:
        return 0.0
    return _k.classification_error_count(logits, y, _threads(logits.size)) / n


# -- CSR kernels (src_cython/_sparse_kernels.pyx) ---------------------------------------

# Rows per block of the fused CSR pass (one block's logits stay in L1)
_CSR_BLOCK = 64
# Bytes of the ring of blocks of the feature-split pass on several threads (each slot a
# block's residual and its entries listed by thread): room for a thread to compute blocks
# ahead of the others' scattering, small enough to stay in L2 (measured, session 8: 32 MB
# did more work than 1 MB or 256 KB, which did about the same)
_CSR_SPLIT_RING_BYTES = 1 << 20


def _csr_threads(indptr, n_classes):
    n = indptr.shape[0] - 1
    work = int(indptr[-1] - indptr[0]) * max(n_classes, 1)
    return max(1, min(_threads(work, _MIN_FLOPS_PER_THREAD // 4), -(-n // _CSR_BLOCK)))


def _w_layout(coef):
    """coef (C, d) is the transposed view of a C-contiguous (d, C) array."""
    return coef.T.flags.c_contiguous


def linear_csr(data, indices, indptr, coef, intercept, out):
    if intercept is None:
        intercept = np.zeros(coef.shape[0], coef.dtype)
    threads = _csr_threads(indptr, coef.shape[0])
    _sk.linear_csr(data, indices, indptr, np.ascontiguousarray(coef.T), intercept, out, threads)
    return out


def softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out,
                        intercept_grad_out, *, skip_negligible=True):  # fmt: skip
    (C, d), dtype = coef.shape, coef.dtype
    if intercept is None:
        intercept = np.zeros(C, dtype)
    tiled, block, class_tile = _tiling.plan_csr(C, coef.itemsize, indptr, d)
    if tiled and d:  # many classes: see _softmax_ce_sums_csr_tiled
        return _softmax_ce_sums_csr_tiled(data, indices, indptr, coef, intercept, y, sample_weight,
                                          coef_grad_out, intercept_grad_out, block, class_tile,
                                          skip_negligible)  # fmt: skip
    # a small batch (fewer entries than features, e.g. a minibatch) reads coef and writes
    # the gradient in their own layout, strided: the O(d C) transposes would cost more;
    # coef and coef_grad_out given as transposed views of (d, C) arrays (the public
    # functions' W and dW) are that layout already: no transpose at all
    small = int(indptr[-1] - indptr[0]) < d and not _w_layout(coef) and (
        coef_grad_out.flags.c_contiguous)
    threads = 1 if small else _csr_threads(indptr, C)
    if threads > 1:
        return _softmax_ce_sums_csr_split(data, indices, indptr, coef, intercept, y,
                                          sample_weight, coef_grad_out, intercept_grad_out,
                                          threads)  # fmt: skip
    intercept_grad = np.zeros(C)
    scratch = np.empty((_CSR_BLOCK + 1) * C, dtype)
    direct = False
    if small:
        W, G = coef, coef_grad_out
        G.fill(0)
    else:  # in the layout of W = coef.T, transposed once unless the gradient has it already
        W, direct = np.ascontiguousarray(coef.T), _w_layout(coef_grad_out)
        if direct:
            G = coef_grad_out.T
            G.fill(0)
        else:
            G = np.zeros((d, C), dtype)
    loss = _sk.softmax_ce_sums_csr(
        data, indices, indptr, W, intercept, y, _unit_or(sample_weight, dtype), G,
        intercept_grad, scratch, _CSR_BLOCK, small,
    )  # fmt: skip
    if not (small or direct):
        _sk.sum_transposed(G[None], coef_grad_out, 1)
    intercept_grad_out[...] = intercept_grad
    return float(loss), weight_total(sample_weight, indptr.shape[0] - 1)


def _softmax_ce_sums_csr_split(data, indices, indptr, coef, intercept, y, sample_weight,
                               coef_grad_out, intercept_grad_out, threads):  # fmt: skip
    # Several threads: rows shared out for the logits, features for the gradient (see
    # _sparse_kernels.softmax_ce_sums_csr_split): no per-thread accumulator, no reduction,
    # the one-thread gradient bit for bit.
    (C, d), dtype = coef.shape, coef.dtype
    n = indptr.shape[0] - 1
    # each slot of the ring holds a block's residual and its entries partitioned by thread:
    # room for the fullest block
    starts = indptr[::_CSR_BLOCK]
    most = int(np.max(np.diff(np.append(starts, indptr[-1])), initial=0))
    slot_bytes = max(1, _CSR_BLOCK * C * coef.itemsize + 5 * most * threads)
    slots = max(1, min(_CSR_SPLIT_RING_BYTES // slot_bytes, -(-n // _CSR_BLOCK)))
    direct = _w_layout(coef_grad_out)
    grad = coef_grad_out.T if direct else np.empty((d, C), dtype)
    intercept_acc = np.zeros((threads, C))
    loss = _sk.softmax_ce_sums_csr_split(
        data, indices, indptr, np.ascontiguousarray(coef.T), intercept, y,
        _unit_or(sample_weight, dtype), grad, intercept_acc,
        np.empty((threads, _CSR_BLOCK * C), dtype), np.empty((slots * _CSR_BLOCK, C), dtype),
        np.empty((slots, threads * most), np.int32), np.empty((slots, threads * most), np.uint8),
        _CSR_BLOCK,
        threads,
    )  # fmt: skip
    if not direct:
        _sk.sum_transposed(grad[None], coef_grad_out, threads)
    intercept_grad_out[...] = intercept_acc.sum(axis=0)
    return float(loss), weight_total(sample_weight, n)


def _softmax_ce_sums_csr_tiled(data, indices, indptr, coef, intercept, y, sample_weight,
                               coef_grad_out, intercept_grad_out, block, class_tile,
                               skip_negligible):  # fmt: skip
    # The tiled regime of the CSR pass (many classes, _sparse_kernels' last section): threads
    # own class tiles; the weights and the gradient in transposed class tiles (C d each).
    (C, d), dtype = coef.shape, coef.dtype
    n = indptr.shape[0] - 1
    block = max(1, min(block, n, 512))
    ntiles = -(-C // class_tile)
    threads = max(1, min(_csr_threads(indptr, C), ntiles))
    Wt = np.empty(C * d, dtype)
    _sk.pack_class_tiles(np.ascontiguousarray(coef), class_tile, Wt)  # (a transposed view: copied)
    Gt = np.zeros(C * d, dtype)
    intercept_grad = np.zeros(C)
    padded = -(-block // 16) * 16
    loss = _sk.softmax_ce_sums_csr_tiled(
        data, indices, indptr, Wt, intercept, y, _unit_or(sample_weight, dtype), Gt,
        intercept_grad, np.empty((threads, class_tile * padded), dtype),
        np.empty((threads, class_tile), dtype), np.empty((ntiles, block)), np.empty((ntiles, block)),
        class_tile, bool(skip_negligible), _tiling.log_skip_threshold(dtype), threads,
    )  # fmt: skip
    if coef_grad_out.flags.c_contiguous:
        _sk.unpack_class_tiles(Gt, class_tile, coef_grad_out)
    else:  # the transposed view of a (d, C) gradient
        grad = np.empty((C, d), dtype)
        _sk.unpack_class_tiles(Gt, class_tile, grad)
        coef_grad_out[...] = grad
    intercept_grad_out[...] = intercept_grad
    return float(loss), weight_total(sample_weight, n)


def logistic_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out):
    dtype = coef.dtype
    threads = _csr_threads(indptr, 1)
    coef_acc = _accumulators(coef_grad_out, threads)
    intercept_acc = np.zeros((threads, 1))
    loss = _sk.logistic_sums_csr(
        data, indices, indptr, coef, float(intercept), y, _unit_or(sample_weight, dtype),
        coef_acc, intercept_acc, _CSR_BLOCK, threads,
    )  # fmt: skip
    _reduce(coef_acc, coef_grad_out)
    return (
        float(loss), float(intercept_acc.sum()), weight_total(sample_weight, indptr.shape[0] - 1)
    )


def train_epoch(
    X, y, sample_weight, W, b, order, batch_size, l2, fit_intercept,
    kind, hyperparameters, lr, t, state, weight_mean=None, l1=0.0,
):  # fmt: skip
    """One epoch of minibatch softmax-regression training in compiled code.

    See "Optional whole-epoch kernel" in :mod:`fastsoftmax._backends` for the
    contract; ``W``, ``b`` and the ``state`` arrays are updated in place.
    Returns ``(loss, t)``: the mean minibatch loss (before each update,
    weighted by rows) and the step counter after the epoch.
    """
    args = _epoch_args.prepare(
        X, y, sample_weight, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state,
        l1=l1,
    )  # fmt: skip
    spec = args.spec
    status = _k.learner_update_status(
        spec.code, len(spec.state_names), len(spec.hyperparameter_names)
    )
    _epoch_args.check_update_status(status, spec, "cython", "src_cython/_cython_kernels.pyx")
    C, d = args.WT.shape
    # a minibatch is split over threads when each gets enough work (on 2+
    # threads by features, with one barrier a minibatch: fs_epoch_split.h)
    threads = _threads(args.batch_size * d * C, _MIN_EPOCH_WORK_PER_THREAD)
    loss, t = _k.train_epoch(
        X, args.y, args.sample_weight,
        float(weight_mean or 0.0), args.WT, args.b, args.order, args.batch_size, float(l2),
        bool(fit_intercept), spec.code, args.hyperparameters, float(lr), int(t),
        args.states_W, args.states_b, threads, args.l1,
    )  # fmt: skip
    _epoch_args.store(args)
    return float(loss), int(t)
